"""Protocol tests of hiventd against a raw vsn 1.0.0 Phoenix peer."""

import asyncio
import gzip
import re
import unittest
import uuid

import msgpack
import websockets

import hvtest
from hvtest import Peer, ReplyError, run

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class ProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = hvtest.Server(api_key="s3cret+key/=", admin_key="adm").start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        log = cls.server.read_log()
        cls.server.cleanup()
        assert code == 0, "hiventd exit code %r\n%s" % (code, log)
        assert "s3cret" not in log, "the API key appears in the log"

    def test_emit_reply_is_published_event(self):
        async def body():
            p = await Peer.producer(self.server, client_id="orders")
            resp = await p.emit("order:placed", {"id": 7, "items": ["a", "b"]}, version=3,
                                key="cust-1")
            await p.close()
            return resp
        resp = run(body())
        self.assertEqual(resp["name"], "order:placed")
        self.assertEqual(resp["payload"], {"id": 7, "items": ["a", "b"]})
        meta = resp["meta"]
        self.assertEqual(meta["name"], "order:placed")
        self.assertEqual(meta["version"], 3)
        self.assertEqual(meta["key"], "cust-1")
        self.assertEqual(meta["producer"], "test-producer")
        self.assertEqual(str(uuid.UUID(meta["uuid"])), meta["uuid"])
        self.assertEqual(str(uuid.UUID(meta["cid"])), meta["cid"])
        self.assertRegex(meta["created_at"], ISO_UTC)

    def test_emit_keeps_given_cid(self):
        async def body():
            p = await Peer.producer(self.server)
            resp = await p.emit("a:b", {}, cid="corr-42")
            await p.close()
            return resp
        self.assertEqual(run(body())["meta"]["cid"], "corr-42")

    def test_emit_validation_errors(self):
        bad = [
            ({"name": "x", "payload": {}, "meta": {}}, "version"),
            ({"name": "x", "payload": {}, "meta": {"version": "1"}}, "version"),
            ({"name": "x", "payload": {}, "meta": {"version": 1.5}}, "version"),
            ({"name": "", "payload": {}, "meta": {"version": 1}}, "name"),
            ({"name": "n" * 256, "payload": {}, "meta": {"version": 1}}, "name"),
            ({"name": 5, "payload": {}, "meta": {"version": 1}}, "name"),
            ({"name": "x", "payload": [1, 2], "meta": {"version": 1}}, "payload"),
            ({"name": "x", "payload": "text", "meta": {"version": 1}}, "payload"),
            ({"payload": {}, "meta": {"version": 1}}, "name"),
        ]

        async def body():
            p = await Peer.producer(self.server)
            results = []
            for payload, _ in bad:
                ref = await p.send("ingress:all", "event:emit", payload)
                results.append((await p.reply(ref))["payload"])
            ok = await p.emit("still:works", {})
            await p.close()
            return results, ok
        results, ok = run(body())
        for (payload, word), reply in zip(bad, results):
            with self.subTest(payload=str(payload)[:60]):
                self.assertEqual(reply["status"], "error")
                self.assertIn(word, reply["response"]["reason"])
        self.assertEqual(ok["name"], "still:works")

    def test_wildcard_inside_topic_rejected(self):
        topics = ["github:*", "*github", "git*hub", "**", "* ", "order:*:created"]

        async def body():
            c = await Peer.connect(self.server, "/consumer/websocket", service="hooks",
                                   name="hooks-1")
            reasons = []
            for topic in topics:
                try:
                    await c.request("event:" + topic, "phx_join", {"partition_count": 2})
                    reasons.append(None)
                except ReplyError as e:
                    reasons.append(e.response["reason"])
            joined = await c.request("event:*", "phx_join", {"partition_count": 2})
            health = self.server.service_health("hooks")
            await c.close()
            return reasons, joined, health

        reasons, joined, health = run(body())
        for topic, reason in zip(topics, reasons):
            with self.subTest(topic=topic):
                self.assertIsNotNone(reason)
                self.assertIn(topic, reason)
                self.assertIn('only "*" alone matches every event', reason)
        self.assertEqual(joined["ack"], False)
        self.assertEqual(health["topics"], ["*"])

    def test_emit_name_with_wildcard_rejected(self):
        names = ["github:*", "*", "*github", "push*"]

        async def body():
            c = await Peer.consumer(self.server, "catch-all", topic="*")
            p = await Peer.producer(self.server)
            reasons = []
            for name in names:
                try:
                    await p.emit(name, {"n": 1})
                    reasons.append(None)
                except ReplyError as e:
                    reasons.append(e.response["reason"])
            sent = await p.emit("github:push", {"n": 2})
            pushes = await c.receive_events(1)
            await p.close()
            await c.close()
            return reasons, sent, pushes

        reasons, sent, pushes = run(body())
        for name, reason in zip(names, reasons):
            with self.subTest(name=name):
                self.assertIsNotNone(reason)
                self.assertIn(name, reason)
                self.assertIn('only "*" alone matches every event', reason)
        # The consumer of every event gets the valid emit, not the rejected ones.
        received = pushes[0]["payload"]["event"]
        self.assertEqual(received["meta"]["uuid"], sent["meta"]["uuid"])

    def test_emit_with_255_byte_name(self):
        async def body():
            p = await Peer.producer(self.server)
            resp = await p.emit("n" * 255, {})
            await p.close()
            return resp
        self.assertEqual(run(body())["name"], "n" * 255)

    def test_repeated_uuid_returns_stored_event(self):
        given = str(uuid.uuid4())

        async def body():
            c = await Peer.consumer(self.server, "dedupe-svc", topic="dedupe:test")
            p = await Peer.producer(self.server)
            first = await p.emit("dedupe:test", {"n": 1}, uuid=given)
            second = await p.emit("dedupe:test", {"n": 2}, uuid=given)
            got = await c.receive_events(1)
            with self.assertRaises(asyncio.TimeoutError):
                await c.next_push(timeout=0.5)
            await p.close()
            await c.close()
            return first, second, got
        first, second, got = run(body())
        self.assertEqual(first["meta"]["uuid"], given)
        self.assertEqual(second, first)
        self.assertEqual(got[0]["payload"]["event"]["payload"], {"n": 1})
        depth = self.server.service_health("dedupe-svc")["pending"]
        self.assertEqual(depth, 0)

    def test_uuid_of_any_form_accepted(self):
        async def body():
            p = await Peer.producer(self.server)
            results = [await p.emit("uuid:any", {}, uuid="not-a-uuid"),
                       await p.emit("uuid:any", {}, uuid="u" * 63),
                       await p.emit("uuid:any", {})]
            with self.assertRaises(ReplyError) as ctx:
                await p.emit("uuid:any", {}, uuid="u" * 64)
            await p.close()
            return results, ctx.exception.response["reason"]
        (named, longest, missing), reason = run(body())
        self.assertEqual(named["meta"]["uuid"], "not-a-uuid")
        self.assertEqual(longest["meta"]["uuid"], "u" * 63)
        self.assertEqual(uuid.UUID(missing["meta"]["uuid"]).version, 4)
        self.assertIn("longer than 63 bytes", reason)

    def test_bad_api_key_gets_403(self):
        async def body(params):
            url = self.server.url("/producer/websocket", vsn="1.0.0", **params)
            with self.assertRaises(websockets.InvalidStatusCode) as ctx:
                await websockets.connect(url)
            return ctx.exception.status_code
        self.assertEqual(run(body({"api_key": "wrong"})), 403)
        self.assertEqual(run(body({})), 403)
        self.assertEqual(run(body({"api_key": "s3cret+key/"})), 403)

    def test_url_encoded_api_key_accepted(self):
        async def body():
            p = await Peer.producer(self.server, api_key="s3cret+key/=")
            await p.close()
        run(body())

    def test_consumer_without_service_rejected(self):
        async def body():
            url = self.server.url("/consumer/websocket", vsn="1.0.0", api_key="s3cret+key/=")
            with self.assertRaises(websockets.InvalidStatusCode) as ctx:
                await websockets.connect(url)
            return ctx.exception.status_code
        self.assertEqual(run(body()), 400)

    def test_heartbeat_answered(self):
        async def body():
            p = await Peer.connect(self.server, "/producer/websocket")
            ref = await p.send("phoenix", "heartbeat", {})
            frame = await p.reply(ref)
            await p.close()
            return ref, frame
        ref, frame = run(body())
        self.assertEqual(ref, 0)
        self.assertEqual(frame["topic"], "phoenix")
        self.assertEqual(frame["ref"], 0)
        self.assertEqual(frame["payload"], {"status": "ok", "response": {}})

    def test_string_ref_echoed_as_string(self):
        async def body():
            ws = await websockets.connect(self.server.url("/producer/websocket",
                                                          api_key="s3cret+key/="))
            await ws.send(msgpack.packb({"topic": "phoenix", "event": "heartbeat",
                                         "payload": {}, "ref": "r1"}))
            frame = hvtest.unpack_frame(await asyncio.wait_for(ws.recv(), 5))
            await ws.close()
            return frame
        self.assertEqual(run(body())["ref"], "r1")

    def test_emit_before_join_is_unmatched(self):
        async def body():
            p = await Peer.connect(self.server, "/producer/websocket")
            with self.assertRaises(ReplyError) as ctx:
                await p.request("ingress:all", "event:emit",
                                {"name": "a", "payload": {}, "meta": {"version": 1}})
            await p.close()
            return ctx.exception.response
        self.assertIn("unmatched topic", run(body())["reason"])

    def test_partition_count_mismatch_names_both(self):
        async def body():
            c1 = await Peer.consumer(self.server, "count-svc", join={"partition_count": 8})
            with self.assertRaises(ReplyError) as ctx:
                await Peer.consumer(self.server, "count-svc", join={"partition_count": 3})
            await c1.close()
            return ctx.exception.response["reason"]
        reason = run(body())
        self.assertIn("3", reason)
        self.assertIn("8", reason)

    def test_invalid_join_parameters(self):
        cases = [{"partition_count": 0}, {"partition_count": "4"}, {"ack": "yes"},
                 {"prefetch": 0}, {"version": -1}]

        async def body():
            reasons = []
            for join in cases:
                with self.assertRaises(ReplyError) as ctx:
                    await Peer.consumer(self.server, "param-svc", join=join)
                reasons.append(ctx.exception.response["reason"])
            return reasons
        for join, reason in zip(cases, run(body())):
            with self.subTest(join=join):
                self.assertIn(next(iter(join)), reason)

    def test_gzip_in_both_directions(self):
        big = {"blob": "x" * 5000, "n": list(range(200))}

        async def body():
            plain = await Peer.consumer(self.server, "gzip-plain", topic="big:event")
            zipped = await Peer.consumer(self.server, "gzip-zip", topic="big:event", gzip="1")
            p = await Peer.producer(self.server)
            resp = await p.emit("big:event", big)
            ev_plain = await plain.receive_events(1)
            ev_zip = await zipped.receive_events(1)
            await p.close()
            await plain.close()
            await zipped.close()
            return resp, ev_plain, ev_zip, plain, zipped
        resp, ev_plain, ev_zip, plain, zipped = run(body())
        self.assertEqual(resp["payload"], big)
        self.assertEqual(ev_plain[0]["payload"]["event"]["payload"], big)
        self.assertEqual(ev_zip[0]["payload"]["event"]["payload"], big)

    def test_gzip_only_when_requested(self):
        big = {"blob": "y" * 3000}

        async def body(params):
            ws = await websockets.connect(self.server.url(
                "/consumer/websocket", api_key="s3cret+key/=", service="gz-" + str(params),
                **params))
            await ws.send(hvtest.pack_frame("event:gz:check", "phx_join",
                                            {"partition_count": 1}, 0))
            await asyncio.wait_for(ws.recv(), 5)
            p = await Peer.producer(self.server)
            await p.emit("gz:check", big)
            raw = await asyncio.wait_for(ws.recv(), 5)
            await p.close()
            await ws.close()
            return raw
        plain = run(body({}))
        zipped = run(body({"gzip": "1"}))
        self.assertNotEqual(plain[:2], b"\x1f\x8b")
        self.assertEqual(msgpack.unpackb(plain)["event"], "event:received")
        self.assertEqual(zipped[:2], b"\x1f\x8b")
        self.assertEqual(msgpack.unpackb(gzip.decompress(zipped))["event"], "event:received")

    def test_events_before_first_join_not_stored(self):
        async def body():
            p = await Peer.producer(self.server)
            await p.emit("late:topic", {"n": "before"})
            c = await Peer.consumer(self.server, "late-svc", topic="late:topic")
            await p.emit("late:topic", {"n": "after"})
            got = await c.receive_events(1)
            with self.assertRaises(asyncio.TimeoutError):
                await c.next_push(timeout=0.5)
            await p.close()
            await c.close()
            return got
        got = run(body())
        self.assertEqual(got[0]["payload"]["event"]["payload"], {"n": "after"})

    def test_topic_routing_and_version_filter(self):
        async def body():
            only_v2 = await Peer.consumer(self.server, "v2-svc", topic="ver:test",
                                          join={"version": 2})
            other = await Peer.consumer(self.server, "other-svc", topic="other:topic")
            p = await Peer.producer(self.server)
            await p.emit("ver:test", {"v": 1}, version=1)
            await p.emit("ver:test", {"v": 2}, version=2)
            got = await only_v2.receive_events(1)
            with self.assertRaises(asyncio.TimeoutError):
                await only_v2.next_push(timeout=0.5)
            with self.assertRaises(asyncio.TimeoutError):
                await other.next_push(timeout=0.2)
            await p.close()
            await only_v2.close()
            await other.close()
            return got
        got = run(body())
        self.assertEqual(got[0]["payload"]["event"]["payload"], {"v": 2})
        self.assertEqual(got[0]["topic"], "event:ver:test")

    def test_partition_follows_key_crc32(self):
        import zlib

        async def body():
            c = await Peer.consumer(self.server, "crc-svc", topic="crc:test",
                                    join={"partition_count": 7})
            p = await Peer.producer(self.server)
            keys = ["alpha", "beta", "gamma", "ключ", "k" * 100]
            for k in keys:
                await p.emit("crc:test", {"k": k}, key=k)
            got = await c.receive_events(len(keys))
            await p.close()
            await c.close()
            return got
        for frame in run(body()):
            key = frame["payload"]["event"]["meta"]["key"]
            expected = zlib.crc32(key.encode()) % 7
            self.assertEqual(frame["payload"]["queue"], "crc-svc:%d" % expected)

    def test_health_and_metrics(self):
        status, text = self.server.http("GET", "/metrics")
        self.assertEqual(status, 200)
        for name in ["hivent_connections", "hivent_events_emitted_total",
                     "hivent_events_delivered_total", "hivent_events_acknowledged_total",
                     "hivent_events_dead_lettered_total", "hivent_queue_depth",
                     "hivent_store_commit_seconds_bucket", "hivent_store_commit_seconds_count"]:
            self.assertIn("\n# TYPE " + name.replace("_bucket", "").replace("_count", ""),
                          "\n" + text)
        self.assertEqual(self.server.health()["status"], "ok")
        status, _ = self.server.http("GET", "/nothing")
        self.assertEqual(status, 404)


class TlsTest(unittest.TestCase):
    """--tls-cert and --tls-key serve wss and https on the same port."""

    def test_wss_and_https(self):
        import os
        import shutil
        import ssl
        import subprocess
        import tempfile
        if not shutil.which("openssl"):
            self.skipTest("openssl command not found")
        tmp = tempfile.mkdtemp(prefix="hiventd-tls-")
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        server = hvtest.Server(args=["--tls-cert", cert, "--tls-key", key]).start()
        try:
            ctx = ssl.create_default_context(cafile=cert)

            async def body():
                url = "wss://127.0.0.1:%d/producer/websocket?vsn=1.0.0" % server.port
                ws = await websockets.connect(url, ssl=ctx)
                await ws.send(hvtest.pack_frame("phoenix", "heartbeat", {}, 0))
                frame = hvtest.unpack_frame(await asyncio.wait_for(ws.recv(), 5))
                await ws.close()
                return frame
            self.assertEqual(run(body())["payload"]["status"], "ok")
            import urllib.request
            with urllib.request.urlopen("https://127.0.0.1:%d/health" % server.port,
                                        context=ctx, timeout=5) as resp:
                self.assertEqual(resp.status, 200)
        finally:
            self.assertEqual(server.stop(), 0)
            server.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
