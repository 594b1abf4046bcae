"""Consume COUNT events of TOPIC as SERVICE from Python and write them as JSON lines."""
import json
import sys
import time

import hivent


def main(topic, service, count, out_path):
    received = []

    class Collector(hivent.Consumer):
        partition_count = 2

        def process(self, event):
            received.append({"name": event.name, "payload": event.payload, "meta": event.meta})

    Collector.topic = topic
    Collector.name = service
    consumer = Collector()
    consumer.start()
    deadline = time.monotonic() + 120
    while len(received) < count and time.monotonic() < deadline:
        consumer.poll(0.5)
    consumer.close()
    with open(out_path, "w", encoding="utf-8") as out:
        for event in received:
            out.write(json.dumps(event) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
