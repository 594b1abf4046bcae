#!/usr/bin/env python3
"""Turn the GitHub webhook examples into `hivent replay` input.

Reads index.json of @octokit/webhooks-examples (an array of
{name, actions, examples}) and writes one JSON line per example payload:
{"name": "github:<event>", "payload": ..., "meta": {"version": 1,
"key": <repository.full_name or absent>}}.
"""
import json
import sys


def main(src: str, dst: str) -> int:
    with open(src, encoding="utf-8") as f:
        groups = json.load(f)
    count = 0
    with open(dst, "w", encoding="utf-8") as out:
        for group in groups:
            for payload in group["examples"]:
                meta = {"version": 1}
                repo = payload.get("repository")
                if isinstance(repo, dict) and isinstance(repo.get("full_name"), str):
                    meta["key"] = repo["full_name"]
                line = {"name": "github:" + group["name"], "payload": payload, "meta": meta}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                count += 1
    print(count)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
