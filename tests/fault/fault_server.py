#!/usr/bin/python3
"""Scripted WebSocket peer for the libhivent client tests.

It speaks Hivent's Phoenix Channels protocol (vsn 1.0.0: binary
MessagePack frames, gzipped from 1024 bytes) on 127.0.0.1 and misbehaves
on request: it can reply ok or error, delay replies, never reply, drop
connections, reject the upgrade with an HTTP status, push phx_close or
phx_error, send malformed, fragmented, oversized or gzip-bomb frames and
ignore heartbeats.  It records every upgrade request (the raw query
string byte for byte) and every frame it receives.

A test drives it through a control socket on 127.0.0.1: one JSON object
per line in, one JSON object per line out.  Commands:

  {"cmd": "set", KEY: VALUE, ...}   change the behaviour (see DEFAULTS)
  {"cmd": "reset"}                  defaults, no records, no connections
  {"cmd": "state"}                  records: requests, frames, stored events
  {"cmd": "drop"}                   abort every open connection (no close frame)
  {"cmd": "push", "topic": T, "event": E, "payload": {...}, "ref": R}
  {"cmd": "raw", "hex": H, "text": false, "fragments": [H, ...]}
  {"cmd": "partial", "hex": H}      write a non-final fragment, then abort
  {"cmd": "zeros", "size": N}       send a binary message of N zero bytes
  {"cmd": "bomb", "size": N}        send a gzip member inflating to N zero bytes
  {"cmd": "stop"}

The listening and control ports go to --ready-file as JSON once both
sockets listen.  Needs Debian's python3-websockets (10.x) and
python3-msgpack.
"""

import argparse
import asyncio
import gzip
import http
import json
import os
import ssl
import struct
import sys
import time
import urllib.parse
import uuid
import zlib

import msgpack
import websockets

DEFAULTS = {
    # HTTP status for the upgrade request, 0 to accept it.
    "reject_status": 0,
    # Reply to phx_join, event:emit and heartbeat: "ok", "error" or "ignore".
    "join": "ok",
    "emit": "ok",
    "heartbeat": "ok",
    # Delay before each emit reply, in milliseconds.
    "emit_delay_ms": 0,
    # Abort the connection when its Nth emit arrives (0: never), on the
    # next drop_connections connections.
    "drop_after_emits": 0,
    "drop_connections": 0,
    # Error reply text for join and emit errors.
    "error_reason": "rejected by the fault server",
    # Gzip every reply, whatever its size and the client's gzip parameter.
    "gzip_all": False,
    # Close the connection with code 1007 (invalid frame data), as hiventd
    # does for a frame it cannot decode, when an emit of this name arrives.
    "poison_name": "",
}


def jsonable(value):
    """Converts a decoded MessagePack value into something json.dumps takes."""
    if isinstance(value, dict):
        return {str(jsonable(k)) if not isinstance(k, str) else k: jsonable(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": bytes(value).hex()}
    return value


class FaultServer:
    def __init__(self):
        self.behaviour = dict(DEFAULTS)
        self.requests = []      # one per upgrade request, accepted or not
        self.frames = []        # every decoded frame received
        self.bad_frames = 0     # frames the server could not decode
        self.stored = []        # uuids of stored events, in arrival order
        self.events = {}        # uuid -> published event
        self.duplicates = 0     # emits whose uuid was already stored
        self.heartbeats = 0
        self.poisoned = 0       # connections closed for a poison_name emit
        self.sni = []           # server names sent in TLS ClientHello
        self.open = {}          # connection id -> websocket
        self.next_id = 1
        self.drops_done = 0

    # Upgrade handling.

    def process_request(self, path, headers):
        raw_query = path.split("?", 1)[1] if "?" in path else ""
        record = {"path": path, "raw_query": raw_query, "query": {},
                  "status": self.behaviour["reject_status"] or 101,
                  "host": headers.get("Host", "")}
        for part in raw_query.split("&"):
            if not part:
                continue
            name, _, value = part.partition("=")
            decoded = urllib.parse.unquote_to_bytes(value)
            record["query"][urllib.parse.unquote(name)] = decoded.hex()
        self.requests.append(record)
        status = self.behaviour["reject_status"]
        if status:
            return (http.HTTPStatus(status), [("Content-Type", "text/plain")],
                    b"rejected by the fault server\n")
        return None

    # Frames.

    def encode(self, frame, gzip_ok):
        # Keys go out in a different order than the client writes them.
        ordered = {"ref": frame.get("ref"), "payload": frame.get("payload", {}),
                   "event": frame["event"], "topic": frame["topic"]}
        data = msgpack.packb(ordered, use_bin_type=True)
        if self.behaviour["gzip_all"] or (gzip_ok and len(data) >= 1024):
            data = gzip.compress(data)
        return data

    async def send_frame(self, ws, frame):
        if ws.dropped:
            return
        try:
            await ws.send(self.encode(frame, ws.gzip_ok))
        except websockets.ConnectionClosed:
            pass

    def reply(self, ws, topic, ref, status, response):
        return self.send_frame(ws, {"topic": topic, "event": "phx_reply", "ref": ref,
                                    "payload": {"status": status, "response": response}})

    def publish(self, event):
        """Stores an emitted event once per meta.uuid and returns it published."""
        meta = dict(event.get("meta") or {})
        uid = meta.get("uuid") or str(uuid.uuid4())
        if uid in self.events:
            self.duplicates += 1
            return self.events[uid]
        meta["uuid"] = uid
        meta["name"] = event.get("name")
        meta["cid"] = meta.get("cid") or str(uuid.uuid4())
        meta.setdefault("created_at", time.strftime("%Y-%m-%dT%H:%M:%S.000000Z",
                                                    time.gmtime()))
        published = {"name": event.get("name"), "payload": event.get("payload", {}),
                     "meta": meta}
        self.events[uid] = published
        self.stored.append(uid)
        return published

    @staticmethod
    def abort(ws):
        """Closes the TCP connection at once; frames already buffered from
        it are ignored, as a crashed peer would never have read them."""
        ws.dropped = True
        ws.transport.abort()

    async def on_emit(self, ws, frame):
        if ws.dropped:
            return
        ws.emits += 1
        b = self.behaviour
        if (b["drop_after_emits"] and ws.emits >= b["drop_after_emits"]
                and self.drops_done < b["drop_connections"]):
            self.drops_done += 1
            self.abort(ws)
            return
        mode = b["emit"]
        if mode == "ignore":
            return
        if b["emit_delay_ms"]:
            await asyncio.sleep(b["emit_delay_ms"] / 1000)
        if mode == "error":
            await self.reply(ws, frame["topic"], frame.get("ref"), "error",
                             {"reason": b["error_reason"]})
            return
        event = frame.get("payload") or {}
        meta = event.get("meta") if isinstance(event, dict) else None
        if not isinstance(meta, dict) or not isinstance(meta.get("version"), int):
            await self.reply(ws, frame["topic"], frame.get("ref"), "error",
                             {"reason": "meta.version must be an integer"})
            return
        await self.reply(ws, frame["topic"], frame.get("ref"), "ok", self.publish(event))

    async def on_frame(self, ws, data):
        if ws.dropped:
            return
        gzipped = isinstance(data, bytes) and data[:2] == b"\x1f\x8b"
        try:
            if isinstance(data, str):
                raise ValueError("text frame")
            plain = gzip.decompress(data) if gzipped else data
            frame = msgpack.unpackb(plain, raw=False, strict_map_key=False)
            if not isinstance(frame, dict):
                raise ValueError("frame is not a map")
        except Exception:  # noqa: BLE001 - any decoding failure counts
            self.bad_frames += 1
            return
        self.frames.append({"conn": ws.conn_id, "topic": frame.get("topic"),
                            "event": frame.get("event"), "ref": frame.get("ref"),
                            "payload": jsonable(frame.get("payload")),
                            "gzip": gzipped, "size": len(data)})
        topic, event, ref = frame.get("topic"), frame.get("event"), frame.get("ref")
        b = self.behaviour
        if topic == "phoenix" and event == "heartbeat":
            self.heartbeats += 1
            if b["heartbeat"] == "ok":
                await self.reply(ws, topic, ref, "ok", {})
        elif event == "phx_join":
            if b["join"] == "ok":
                await self.reply(ws, topic, ref, "ok", {"ack": False})
            elif b["join"] == "error":
                await self.reply(ws, topic, ref, "error", {"reason": b["error_reason"]})
        elif event == "phx_leave":
            await self.reply(ws, topic, ref, "ok", {})
        elif (event == "event:emit" and b["poison_name"]
              and isinstance(frame.get("payload"), dict)
              and frame["payload"].get("name") == b["poison_name"]):
            self.poisoned += 1
            ws.dropped = True
            await ws.close(code=1007, reason="invalid frame: poisoned by the fault server")
        elif event == "event:emit":
            # Each emit is answered in its own task so a delayed reply does
            # not stop the server from reading.
            asyncio.ensure_future(self.on_emit(ws, frame))

    async def handler(self, ws, path):
        ws.conn_id = self.next_id
        self.next_id += 1
        ws.emits = 0
        ws.dropped = False
        query = urllib.parse.parse_qs(path.split("?", 1)[1] if "?" in path else "")
        ws.gzip_ok = query.get("gzip", ["0"])[0] == "1"
        self.open[ws.conn_id] = ws
        try:
            async for message in ws:
                await self.on_frame(ws, message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.open.pop(ws.conn_id, None)

    # Control commands.

    def state(self):
        return {"requests": self.requests, "frames": self.frames,
                "bad_frames": self.bad_frames, "stored": self.stored,
                "duplicates": self.duplicates, "heartbeats": self.heartbeats,
                "sni": self.sni, "poisoned": self.poisoned,
                "open": len(self.open)}

    def reset(self):
        for ws in list(self.open.values()):
            self.abort(ws)
        self.__init__()

    async def broadcast_raw(self, data):
        for ws in list(self.open.values()):
            try:
                await ws.send(data)
            except websockets.ConnectionClosed:
                pass

    async def command(self, msg):
        cmd = msg.get("cmd")
        if cmd == "set":
            for key, value in msg.items():
                if key == "cmd":
                    continue
                if key not in DEFAULTS:
                    return {"error": "unknown behaviour key " + key}
                self.behaviour[key] = value
            if "drop_connections" in msg:
                self.drops_done = 0
            return {"ok": True}
        if cmd == "reset":
            self.reset()
            return {"ok": True}
        if cmd == "state":
            return self.state()
        if cmd == "drop":
            count = len(self.open)
            for ws in list(self.open.values()):
                self.abort(ws)
            return {"dropped": count}
        if cmd == "push":
            frame = {"topic": msg["topic"], "event": msg["event"],
                     "payload": msg.get("payload", {}), "ref": msg.get("ref")}
            for ws in list(self.open.values()):
                await self.send_frame(ws, frame)
            return {"sent": len(self.open)}
        if cmd == "raw":
            if "fragments" in msg:
                parts = [bytes.fromhex(h) for h in msg["fragments"]]
                for ws in list(self.open.values()):
                    await ws.send(parts)
            elif msg.get("text"):
                await self.broadcast_raw(bytes.fromhex(msg["hex"]).decode("utf-8"))
            else:
                await self.broadcast_raw(bytes.fromhex(msg["hex"]))
            return {"sent": len(self.open)}
        if cmd == "partial":
            payload = bytes.fromhex(msg["hex"])
            # Server frames are unmasked: FIN clear, opcode 2 (binary).
            header = bytes([0x02, 126]) + struct.pack("!H", len(payload))
            for ws in list(self.open.values()):
                ws.transport.write(header + payload)
                self.abort(ws)
            return {"sent": True}
        if cmd == "zeros":
            await self.broadcast_raw(bytes(msg["size"]))
            return {"sent": len(self.open)}
        if cmd == "bomb":
            compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
            chunk = bytes(1 << 20)
            parts = [compressor.compress(chunk) for _ in range(msg["size"] >> 20)]
            parts.append(compressor.flush())
            await self.broadcast_raw(b"".join(parts))
            return {"sent": len(self.open)}
        if cmd == "stop":
            asyncio.get_event_loop().call_soon(sys.exit, 0)
            return {"ok": True}
        return {"error": "unknown command %r" % cmd}

    async def control(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    reply = await self.command(json.loads(line))
                except Exception as exc:  # noqa: BLE001 - reported to the test
                    reply = {"error": "%s: %s" % (type(exc).__name__, exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--max-seconds", type=float, default=600,
                        help="exit after this many seconds even if no test stops it")
    args = parser.parse_args()

    server = FaultServer()
    ssl_ctx = None
    if args.tls_cert:
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        ssl_ctx.sni_callback = lambda sock, name, ctx: server.sni.append(name)
    ws_server = await websockets.serve(server.handler, "127.0.0.1", 0, ssl=ssl_ctx,
                                       process_request=server.process_request,
                                       max_size=None, compression=None,
                                       ping_interval=None)
    control = await asyncio.start_server(server.control, "127.0.0.1", 0,
                                         limit=1 << 24)
    ports = {"port": ws_server.sockets[0].getsockname()[1],
             "control": control.sockets[0].getsockname()[1]}
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.rename(tmp, args.ready_file)
    # A bounded lifetime: a test that crashes never leaves this behind for long.
    await asyncio.sleep(args.max_seconds)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except SystemExit:
        raise
    except KeyboardInterrupt:
        pass
