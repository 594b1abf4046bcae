"""Command line: python -m hivent {emit,consume,worker} ...

Configuration comes from HIVENT_* environment variables, for example
HIVENT_SERVER_HOST, HIVENT_SERVER_PORT and HIVENT_SERVER_API_KEY.
Events are printed as one JSON object per line ({"name", "payload",
"meta"}, plus "queue" and "partition" for consumed events); bytes values
are printed as base64 text.

    python -m hivent emit user:created '{"id": 7}' --version 2 --key user-7
    python -m hivent consume user:created audit --partitions 4 --count 10
    python -m hivent worker myapp.consumers:Audit myapp.consumers:Mailer
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import logging
import sys
from typing import Any, List, Optional

import hivent


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, hivent.ExtType):
        return {"ext": value.code, "data": base64.b64encode(value.data).decode("ascii")}
    raise TypeError(f"cannot print a value of type {type(value).__name__} as JSON")


def event_json(event: hivent.Event) -> str:
    """Return one event as a JSON line; map keys that are not strings become their text."""
    record = event.to_dict()
    if event.queue is not None:
        record["queue"] = event.queue
        record["partition"] = event.partition
    return json.dumps(_string_keys(record), default=_json_default, ensure_ascii=False)


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(k, default=_json_default):
                _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(item) for item in value]
    return value


def _emit(args: argparse.Namespace) -> int:
    payload = json.loads(args.payload)
    if not isinstance(payload, dict):
        raise SystemExit("hivent emit: the payload must be a JSON object")
    with hivent.Client() as client:
        event = client.emit(args.name, payload, version=args.version, cid=args.cid,
                            key=args.key, timeout=args.timeout)
    print(event_json(event), flush=True)
    return 0


def _consume(args: argparse.Namespace) -> int:
    class Printer(hivent.Consumer):
        topic = args.topic
        name = args.service
        partition_count = args.partitions
        version = args.version

        def process(self, event: hivent.Event) -> None:
            print(event_json(event), flush=True)
            self.seen += 1
            if args.count and self.seen >= args.count:
                self.stop()

    consumer = Printer()
    consumer.seen = 0
    consumer.run(timeout=args.timeout)
    consumer.close()
    if args.count and consumer.seen < args.count:
        print(f"hivent consume: received {consumer.seen} of {args.count} events before the "
              "timeout", file=sys.stderr)
        return 1
    return 0


def load_consumer(spec: str) -> hivent.Consumer:
    """Import MODULE:CLASS and return an instance of that Consumer subclass."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise SystemExit(f"hivent worker: expected MODULE:CLASS, got {spec!r}")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, hivent.Consumer)):
        raise SystemExit(f"hivent worker: {spec} is not a hivent.Consumer subclass")
    return cls()


def _worker(args: argparse.Namespace) -> int:
    sys.path.insert(0, ".")
    consumers = [load_consumer(spec) for spec in args.consumers]
    logging.getLogger("hivent").info("worker running %s", ", ".join(args.consumers))
    hivent.run(*consumers)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hivent", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="WARNING",
                        help="level of the logging output on stderr (default WARNING)")
    commands = parser.add_subparsers(dest="command", required=True)

    emit = commands.add_parser("emit", help="emit one event and print the published event")
    emit.add_argument("name")
    emit.add_argument("payload", nargs="?", default="{}", help="payload as a JSON object")
    emit.add_argument("--version", type=int, default=1)
    emit.add_argument("--cid")
    emit.add_argument("--key")
    emit.add_argument("--timeout", type=float, help="seconds to wait for the reply")
    emit.set_defaults(handler=_emit)

    consume = commands.add_parser("consume", help="print consumed events")
    consume.add_argument("topic", help='event name, or "*" for all events')
    consume.add_argument("service", help="consumer service (group) name")
    consume.add_argument("--partitions", type=int, default=1)
    consume.add_argument("--version", type=int, help="consume only this event version")
    consume.add_argument("--count", type=int, default=0, help="stop after this many events")
    consume.add_argument("--timeout", type=float, help="stop after this many seconds")
    consume.set_defaults(handler=_consume)

    worker = commands.add_parser("worker", help="run consumer classes until SIGINT or SIGTERM")
    worker.add_argument("consumers", nargs="+", metavar="MODULE:CLASS")
    worker.set_defaults(handler=_worker)

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except hivent.HiventError as exc:
        print(f"hivent {args.command}: {exc.symbol}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
