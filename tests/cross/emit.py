"""Emit the shared payloads from Python and write the published events as JSON lines."""
import json
import sys

import hivent
from payloads import payloads


def main(topic, count, out_path):
    client = hivent.Client(client_id="cross-python")
    with open(out_path, "w", encoding="utf-8") as out:
        for i, payload in enumerate(payloads(count)):
            event = client.emit(topic, payload, version=2, key=f"key-{i % 3}")
            out.write(json.dumps({"name": event.name, "payload": event.payload,
                                  "meta": event.meta}) + "\n")
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
