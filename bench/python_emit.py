#!/usr/bin/env python3
"""Asynchronous emit rate of the Python binding against a hiventd.

Usage:
    python3 bench/python_emit.py [--port PORT] [--host HOST] [--count N]
                                 [--payload-bytes B] [--hiventd PATH]

Without --port the script starts its own hiventd (--hiventd, default
$HIVENT_BUILD_DIR/server/hiventd, else build/server/hiventd) on 127.0.0.1
with a free port and a temporary data directory, and stops it at the end.
It emits N events (default 20000) with Client.emit_async() and a delivery
callback.  Each payload dict has a "data" string of B bytes (default 100),
and keys cycle over 64 values.  The script waits for all replies with
flush() and prints one line:
    python_emit: N events in S s = R events/s (F failed)
The rate counts from the first emit to the last delivery callback.  The
hivent package must be importable (for example after
`pip install --no-build-isolation ./bindings/python` in a virtual
environment).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import hivent

READY_TIMEOUT = 15.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="port of a running hiventd")
    parser.add_argument("--host", default="127.0.0.1", help="host of a running hiventd")
    parser.add_argument("--count", type=int, default=20000, help="events to emit")
    parser.add_argument("--payload-bytes", type=int, default=100,
                        help="length of the payload's data string")
    parser.add_argument("--hiventd", help="hiventd binary to start when --port is not given")
    return parser.parse_args()


def default_hiventd():
    build = os.environ.get("HIVENT_BUILD_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build")
    return os.path.join(build, "server", "hiventd")


def start_hiventd(binary, work):
    """Start hiventd on 127.0.0.1 with a free port; return (process, port)."""
    ready = os.path.join(work, "ready")
    data = os.path.join(work, "data")
    os.mkdir(data)
    process = subprocess.Popen(
        [binary, "--data-dir", data, "--listen", "127.0.0.1:0", "--ready-file", ready,
         "--log-level", "warning"])
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"python_emit: hiventd exited with status {process.returncode}")
        if os.path.exists(ready):
            with open(ready) as file:
                text = file.read()
            if text.endswith("\n"):
                return process, int(text)
        time.sleep(0.02)
    process.kill()
    sys.exit(f"python_emit: hiventd did not write {ready} within {READY_TIMEOUT} s")


def run(host, port, count, payload_bytes):
    """Emit @count events and return (seconds, failures)."""
    data = "x" * payload_bytes
    keys = [f"key-{i}" for i in range(64)]
    done = [0, 0]  # delivered, failed
    last = [0.0]

    def on_delivery(error, event):
        done[0] += 1
        if error is not None:
            done[1] += 1
        last[0] = time.perf_counter()

    options = {"server": {"host": host, "port": port}, "max_reconnect_tries": 0}
    with hivent.Client(options, env=False, dispatch="thread") as client:
        client.emit("bench:warmup", {"data": data})
        start = time.perf_counter()
        for i in range(count):
            client.emit_async("bench:emit", {"data": data, "i": i}, key=keys[i % 64],
                              callback=on_delivery)
        remaining = client.flush(120)
    if remaining or done[0] != count:
        sys.exit(f"python_emit: {remaining} emits still outstanding, "
                 f"{done[0]} of {count} callbacks ran")
    return last[0] - start, done[1]


def main():
    args = parse_args()
    if args.count < 1 or args.payload_bytes < 0:
        sys.exit("python_emit: --count must be >= 1 and --payload-bytes >= 0")
    process = None
    work = None
    port = args.port
    try:
        if port is None:
            work = tempfile.mkdtemp(prefix="python-emit-bench.")
            process, port = start_hiventd(args.hiventd or default_hiventd(), work)
            args.host = "127.0.0.1"
        seconds, failed = run(args.host, port, args.count, args.payload_bytes)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"python_emit: {args.count} events in {seconds:.3f} s = "
          f"{args.count / seconds:.0f} events/s ({failed} failed)")


if __name__ == "__main__":
    main()
