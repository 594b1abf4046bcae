"""Demo consumer in Python: counts events per partition.

    python consumer.py TOPIC SERVICE PARTITIONS EXPECTED OUT_FILE

The server address and key come from HIVENT_* environment variables.
"""
import collections
import json
import logging
import sys
import time

import hivent

IDLE_LIMIT_S = 60


def main(topic: str, service: str, partitions: int, expected: int, out_file: str) -> int:
    logging.basicConfig(level=logging.WARNING)
    per_partition = collections.Counter()

    class Triage(hivent.Consumer):
        pass

    Triage.topic = topic
    Triage.name = service
    Triage.partition_count = partitions

    def process(self, event):
        per_partition[event.partition] += 1

    Triage.process = process
    consumer = Triage()
    consumer.start()
    last_event = time.monotonic()
    while sum(per_partition.values()) < expected and time.monotonic() - last_event < IDLE_LIMIT_S:
        before = sum(per_partition.values())
        consumer.poll(1.0)
        if sum(per_partition.values()) > before:
            last_event = time.monotonic()
    consumer.close()

    summary = {
        "language": "Python", "service": service, "topic": topic,
        "received": sum(per_partition.values()), "rejected": 0,
        "partitions": {str(p): per_partition[p] for p in range(partitions)},
    }
    with open(out_file, "w", encoding="utf-8") as f:
        f.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
