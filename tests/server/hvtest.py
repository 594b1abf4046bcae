"""Helpers for the hiventd tests: a server process and a raw Phoenix peer.

The peer sends exactly what the Elixir hivent 3.0 client sends: one
MessagePack map {topic, event, payload, ref} per binary WebSocket message,
integer refs counting from 0, and gzip (RFC 1952) once the packed map is
1024 bytes or more.
"""

import asyncio
import gzip
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import msgpack
import websockets

HIVENTD = os.environ.get("HIVENTD")
if not HIVENTD:
    HIVENTD = os.path.join(os.path.dirname(__file__), "..", "..", "build", "server", "hiventd")

GZIP_THRESHOLD = 1024


class Server:
    """One hiventd process on 127.0.0.1 with a port picked by the kernel."""

    def __init__(self, api_key=None, admin_key=None, args=(), data_dir=None):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="hiventd-test-")
        self.api_key = api_key
        self.admin_key = admin_key
        self.args = list(args)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "hiventd.log")

    def start(self, timeout=10.0):
        ready = os.path.join(self.data_dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        cmd = [HIVENTD, "--data-dir", os.path.join(self.data_dir, "db"),
               "--listen", "127.0.0.1:0", "--ready-file", ready] + self.args
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        if self.admin_key:
            cmd += ["--admin-key", self.admin_key]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("hiventd exited with %d:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                with open(ready) as f:
                    text = f.read()
                if text.endswith("\n"):
                    self.port = int(text)
                    return self
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError("hiventd did not write its ready file within %.0f s" % timeout)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=10.0):
        """Sends SIGTERM and returns the exit code."""
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = "timeout"
        self.proc = None
        self.log.close()
        return code

    def kill(self):
        """Kills the process with SIGKILL."""
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.log.close()

    def cleanup(self):
        if self.proc:
            self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def url(self, path, **params):
        query = urllib.parse.urlencode(params)
        return "ws://127.0.0.1:%d%s?%s" % (self.port, path, query)

    def http(self, method, path, token=None, **params):
        """Returns (status, body text) of an HTTP request."""
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def health(self):
        status, body = self.http("GET", "/health")
        assert status == 200, body
        return json.loads(body)

    def service_health(self, name):
        for svc in self.health()["services"]:
            if svc["name"] == name:
                return svc
        return None


def pack_frame(topic, event, payload, ref):
    data = msgpack.packb({"topic": topic, "event": event, "payload": payload, "ref": ref},
                         use_bin_type=True)
    if len(data) >= GZIP_THRESHOLD:
        data = gzip.compress(data)
    return data


def unpack_frame(data):
    if isinstance(data, str):
        raise AssertionError("vsn 1.0.0 peer received a text frame: %r" % data[:200])
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


class ReplyError(Exception):
    def __init__(self, response):
        super().__init__(response.get("reason") if isinstance(response, dict) else response)
        self.response = response


class Peer:
    """A raw vsn 1.0.0 Phoenix peer over one WebSocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_ref = 0
        self.replies = {}       # ref -> future, until the reply arrives
        self.waiting = {}       # ref -> the same future, until reply() takes it
        self.pushes = asyncio.Queue()
        self.frames = []
        self.frame_sizes = []   # bytes of each received frame after gunzip
        self.closed = asyncio.get_event_loop().create_future()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, server, path, **params):
        params.setdefault("vsn", "1.0.0")
        if server.api_key and "api_key" not in params:
            params["api_key"] = server.api_key
        ws = await websockets.connect(server.url(path, **params), ping_interval=None,
                                      max_size=None, close_timeout=2)
        return cls(ws)

    @classmethod
    async def producer(cls, server, client_id="test-producer", **params):
        peer = await cls.connect(server, "/producer/websocket", client_id=client_id, **params)
        await peer.request("ingress:all", "phx_join", {})
        return peer

    @classmethod
    async def consumer(cls, server, service, topic="*", name=None, join=None, **params):
        peer = await cls.connect(server, "/consumer/websocket", service=service,
                                 name=name or service + "-instance", **params)
        payload = {"partition_count": 4}
        payload.update(join or {})
        await peer.request("event:" + topic, "phx_join", payload)
        return peer

    async def _read(self):
        try:
            async for data in self.ws:
                frame = unpack_frame(data)
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                self.frame_sizes.append(len(data))
                self.frames.append(frame)
                if frame["event"] == "phx_reply" and frame["ref"] in self.replies:
                    fut = self.replies.pop(frame["ref"])
                    if not fut.done():
                        fut.set_result(frame)
                else:
                    await self.pushes.put(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result((self.ws.close_code, self.ws.close_reason))
            for fut in self.replies.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))

    async def send(self, topic, event, payload):
        """Sends one frame and returns its ref."""
        ref = self.next_ref
        self.next_ref += 1
        fut = asyncio.get_event_loop().create_future()
        # A reply that no caller awaits (an ack sent without waiting) may fail on close.
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.replies[ref] = fut
        self.waiting[ref] = fut
        await self.ws.send(pack_frame(topic, event, payload, ref))
        return ref

    async def reply(self, ref, timeout=10.0):
        """Returns the reply frame of @ref."""
        return await asyncio.wait_for(self.waiting.pop(ref), timeout)

    async def request(self, topic, event, payload, timeout=10.0):
        """Sends a frame and returns the ok response, raising ReplyError on an error reply."""
        fut_ref = await self.send(topic, event, payload)
        frame = await self.reply(fut_ref, timeout)
        status = frame["payload"]["status"]
        if status != "ok":
            raise ReplyError(frame["payload"]["response"])
        return frame["payload"]["response"]

    async def emit(self, name, payload, version=1, key=None, cid=None, uuid=None):
        meta = {"version": version, "cid": cid, "key": key, "producer": "test-producer"}
        if uuid:
            meta["uuid"] = uuid
        return await self.request("ingress:all", "event:emit",
                                  {"name": name, "payload": payload, "meta": meta})

    async def next_push(self, timeout=10.0):
        return await asyncio.wait_for(self.pushes.get(), timeout)

    async def receive_events(self, count, timeout=20.0):
        """Collects @count event:received pushes."""
        events = []
        deadline = time.monotonic() + timeout
        while len(events) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("received %d of %d events" % (len(events), count))
            frame = await self.next_push(left)
            if frame["event"] == "event:received":
                events.append(frame)
        return events

    async def ack(self, frame):
        event = frame["payload"]["event"]
        return await self.request(frame["topic"], "event:ack",
                                  {"queue": frame["payload"]["queue"],
                                   "uuid": event["meta"]["uuid"]})

    async def close(self):
        await self.ws.close()
        await asyncio.wait_for(self.reader, 5)


def run(coro, timeout=120):
    return asyncio.get_event_loop().run_until_complete(asyncio.wait_for(coro, timeout))
