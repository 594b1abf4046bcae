#!/usr/bin/python3
"""TCP proxy on 127.0.0.1 that can freeze traffic without closing sockets.

SIGUSR1 freezes: no bytes are forwarded in either direction and new
connections are accepted but not connected upstream.  SIGUSR2 resumes.
Sockets stay open while frozen, so each peer only notices the cut through
its own timeouts, as with a pulled cable.
"""

import argparse
import asyncio
import os
import signal
import sys
import time


class Proxy:
    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.running = asyncio.Event()
        self.running.set()
        self.connections = 0

    def log(self, message):
        print(f"{time.time():.3f} proxy {message}", file=sys.stderr, flush=True)

    def freeze(self):
        self.running.clear()
        self.log("frozen")

    def resume(self):
        self.running.set()
        self.log("resumed")

    async def pipe(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                await self.running.wait()
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(self, client_reader, client_writer):
        self.connections += 1
        conn_id = self.connections
        await self.running.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError as exc:
            self.log(f"connection {conn_id}: upstream connect failed: {exc}")
            client_writer.close()
            return
        await asyncio.gather(self.pipe(client_reader, up_writer),
                             self.pipe(up_reader, client_writer))
        self.log(f"connection {conn_id} closed")


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--port-file", required=True,
                        help="file that receives the listening port once bound")
    args = parser.parse_args()
    proxy = Proxy(args.upstream_port)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, proxy.freeze)
    loop.add_signal_handler(signal.SIGUSR2, proxy.resume)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(f"{port}\n")
    os.rename(args.port_file + ".tmp", args.port_file)
    proxy.log(f"listening on 127.0.0.1:{port}, upstream 127.0.0.1:{args.upstream_port}")
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
