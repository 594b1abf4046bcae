#!/usr/bin/python3
"""Emit benchmark of a plain Python Hivent producer, without libhivent.

It speaks the wire protocol directly with Debian's python3-websocket
(websocket-client) and python3-msgpack: Phoenix Channels vsn 1.0.0 over
WebSocket, one MessagePack map per binary frame, gzip for frames of 1024
bytes and more.  It joins ingress:all, then sends COUNT event:emit pushes
keeping at most WINDOW without a reply, and counts the ok replies.

    plain_python_client.py --port PORT [--host HOST] [--count N]
                           [--payload-bytes B] [--window N]

It prints one line in the format of the binding benchmarks:
    plain_python: N events in S s = R events/s (F failed)
The rate counts from the first emit to the last reply.
"""

import argparse
import gzip
import sys
import time
import urllib.parse

import msgpack
import websocket

GZIP_THRESHOLD = 1024


def encode(message):
    packed = msgpack.packb(message, use_bin_type=True)
    if len(packed) >= GZIP_THRESHOLD:
        packed = gzip.compress(packed, compresslevel=6)
    return packed


def decode(data):
    if isinstance(data, str):
        raise ValueError("unexpected text frame from hiventd")
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return msgpack.unpackb(data, raw=False)


def receive_reply(ws):
    """Return the next phx_reply frame, skipping anything else."""
    while True:
        frame = decode(ws.recv())
        if frame.get("event") == "phx_reply":
            return frame


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--payload-bytes", type=int, default=100,
                        help="bytes of the payload's data string (default 100)")
    parser.add_argument("--window", type=int, default=1000,
                        help="emits sent ahead of their replies (default 1000)")
    args = parser.parse_args()
    if args.count < 1 or args.window < 1 or args.payload_bytes < 0:
        parser.error("count and window must be positive, payload-bytes not negative")

    query = urllib.parse.urlencode({"vsn": "1.0.0", "client_id": "plain-python"})
    url = "ws://%s:%d/producer/websocket?%s" % (args.host, args.port, query)
    ws = websocket.create_connection(url, timeout=60)
    ws.send_binary(encode({"topic": "ingress:all", "event": "phx_join",
                           "payload": {}, "ref": 0}))
    joined = receive_reply(ws)
    if joined.get("payload", {}).get("status") != "ok":
        sys.exit("plain_python: join of ingress:all failed: %r" % (joined,))

    data = "x" * args.payload_bytes
    keys = ["key-%d" % i for i in range(64)]
    failed = 0
    replies = 0
    started = time.monotonic()
    for i in range(args.count):
        message = {
            "topic": "ingress:all",
            "event": "event:emit",
            "ref": i + 1,
            "payload": {
                "name": "bench:plain",
                "payload": {"data": data, "seq": i},
                "meta": {"version": 1, "cid": None, "key": keys[i % 64],
                         "producer": "plain-python"},
            },
        }
        ws.send_binary(encode(message))
        if i + 1 - replies >= args.window:
            reply = receive_reply(ws)
            replies += 1
            failed += reply.get("payload", {}).get("status") != "ok"
    while replies < args.count:
        reply = receive_reply(ws)
        replies += 1
        failed += reply.get("payload", {}).get("status") != "ok"
    seconds = time.monotonic() - started
    ws.close()
    print("plain_python: %d events in %.3f s = %.0f events/s (%d failed)"
          % (args.count, seconds, args.count / seconds, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
