#!/usr/bin/env python3
"""Print the demo's summary table and check every count.

Usage: summary.py REPLAY_FILE SERVICES_FILE RESULTS_DIR DEAD_LETTERS_JSON SECONDS

SERVICES_FILE has one line per consumer service: LANGUAGE SERVICE TOPIC
PARTITIONS REJECT_RULE, where REJECT_RULE is "-" or "action=VALUE".
Exits with 1 when a count disagrees with what was emitted.
"""
import json
import os
import sys


def load_replay(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def expected_for(events, topic, rule):
    matching = [e for e in events if topic == "*" or e["name"] == topic]
    rejects = 0
    if rule != "-":
        field, value = rule.split("=", 1)
        rejects = sum(1 for e in matching if e["payload"].get(field) == value)
    return len(matching), rejects


def main(replay, services_file, results_dir, dead_file, seconds):
    events = load_replay(replay)
    with open(dead_file, encoding="utf-8") as f:
        dead = json.load(f)
    problems = []
    rows = []
    with open(services_file, encoding="utf-8") as f:
        services = [line.split() for line in f if line.strip()]
    for language, service, topic, partitions, rule in services:
        want, want_rejects = expected_for(events, topic, rule)
        path = os.path.join(results_dir, service + ".json")
        try:
            with open(path, encoding="utf-8") as f:
                got = json.load(f)
        except (OSError, ValueError) as exc:
            problems.append(f"{service}: no result from the {language} consumer ({exc})")
            rows.append((language, service, topic, want, 0, {}, want_rejects, 0, 0))
            continue
        parts = {int(k): v for k, v in got["partitions"].items()}
        dlq = dead.get(service, 0)
        rows.append((language, service, topic, want, got["received"], parts, want_rejects,
                     got["rejected"], dlq))
        if got["received"] != want:
            problems.append(f"{service}: received {got['received']} events, expected {want}")
        if sum(parts.values()) != got["received"]:
            problems.append(f"{service}: partition counts add up to {sum(parts.values())}, "
                            f"not {got['received']}")
        if got["rejected"] != want_rejects or dlq != want_rejects:
            problems.append(f"{service}: {got['rejected']} rejected and {dlq} dead letters, "
                            f"expected {want_rejects}")

    print()
    print(f"events emitted: {len(events)} in {seconds:.2f} s "
          f"({len(events) / seconds if seconds > 0 else 0:.0f} events/s)")
    print()
    header = ("consumer", "service", "topic", "expected", "received", "per partition",
              "dead letters")
    table = [header]
    for language, service, topic, want, got, parts, _, _, dlq in rows:
        spread = " ".join(f"{p}:{n}" for p, n in sorted(parts.items()))
        table.append((language, service, topic, str(want), str(got), spread, str(dlq)))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    if problems:
        for p in problems:
            print("MISMATCH: " + p)
        return 1
    print("every count matches what was emitted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))
