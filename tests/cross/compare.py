"""Check that every consumer received exactly the published events, field for field."""
import json
import math
import sys

META_KEYS = ("version", "cid", "key", "producer", "uuid", "created_at")


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def normalise(value):
    """Treat floats that hold integers like the integers, and absent meta like null."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def by_uuid(events):
    out = {}
    for e in events:
        meta = {k: e.get("meta", {}).get(k) for k in META_KEYS}
        out[meta["uuid"]] = {"name": e["name"], "payload": normalise(e["payload"]), "meta": meta}
    return out


def main(published_path, *received_paths):
    published = by_uuid(load(published_path))
    failures = 0
    for path in received_paths:
        got = by_uuid(load(path))
        missing = set(published) - set(got)
        extra = set(got) - set(published)
        differ = [u for u in set(published) & set(got) if published[u] != got[u]]
        ok = not missing and not extra and not differ
        print(f"{path}: {len(got)} events, {len(missing)} missing, {len(extra)} unexpected, "
              f"{len(differ)} different: {'ok' if ok else 'FAILED'}")
        for u in differ[:3]:
            print(f"  {u}:\n    published {json.dumps(published[u])[:400]}\n"
                  f"    received  {json.dumps(got[u])[:400]}")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
