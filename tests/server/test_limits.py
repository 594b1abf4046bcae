"""Limits and heartbeats: the offending client gets a clear error, the others carry on."""

import asyncio
import gzip
import time
import unittest

import msgpack
import websockets

import hvtest
from hvtest import Peer, ReplyError, run


class LimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = hvtest.Server(args=[
            "--max-frame-size", "4096", "--max-inflated-size", "8192",
            "--max-connections", "8", "--max-topics", "2", "--max-pending", "5",
            "--max-partitions", "8", "--heartbeat-interval", "400"]).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        log = cls.server.read_log()
        cls.server.cleanup()
        assert code == 0, log

    async def beating(self, peer, seconds):
        """Sends heartbeats every 150 ms for @seconds and checks each reply."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await peer.request("phoenix", "heartbeat", {})
            await asyncio.sleep(0.15)

    def test_frame_too_large_closes_only_sender(self):
        async def body():
            good = await Peer.producer(self.server)
            bad = await Peer.producer(self.server)
            frame = msgpack.packb({"topic": "ingress:all", "event": "event:emit",
                                   "payload": {"name": "x", "payload": {"b": bytes(range(256)) * 20},
                                               "meta": {"version": 1}}, "ref": 1})
            self.assertGreater(len(frame), 4096)
            await bad.ws.send(frame)
            code, reason = await asyncio.wait_for(bad.closed, 5)
            resp = await good.emit("still:fine", {})
            await good.close()
            return code, reason, resp
        code, reason, resp = run(body())
        self.assertEqual(code, 1009)
        self.assertIn("maximum frame size of 4096 bytes", reason)
        self.assertEqual(resp["name"], "still:fine")

    def test_inflated_too_large_closes(self):
        async def body():
            bad = await Peer.producer(self.server)
            packed = msgpack.packb({"topic": "ingress:all", "event": "event:emit",
                                    "payload": {"name": "x", "payload": {"z": "0" * 50000},
                                                "meta": {"version": 1}}, "ref": 1})
            zipped = gzip.compress(packed)
            self.assertLess(len(zipped), 4096)
            await bad.ws.send(zipped)
            return await asyncio.wait_for(bad.closed, 5)
        code, reason = run(body())
        self.assertEqual(code, 1009)
        self.assertIn("inflated size exceeds", reason)

    def test_garbage_frame_closes_with_reason(self):
        async def body():
            bad = await Peer.producer(self.server)
            await bad.ws.send(b"\x93\x01\x02\x03")
            return await asyncio.wait_for(bad.closed, 5)
        code, reason = run(body())
        self.assertEqual(code, 1007)
        self.assertIn("invalid frame", reason)

    def test_text_frame_on_vsn1_closes(self):
        async def body():
            bad = await Peer.producer(self.server)
            await bad.ws.send('["1","1","phoenix","heartbeat",{}]')
            return await asyncio.wait_for(bad.closed, 5)
        code, reason = run(body())
        self.assertEqual(code, 1003)
        self.assertIn("binary", reason)

    def test_connection_limit_rejects_upgrade(self):
        async def body():
            peers = []
            status = None
            for _ in range(12):
                try:
                    peers.append(await Peer.connect(self.server, "/producer/websocket"))
                except websockets.InvalidStatusCode as e:
                    status = e.status_code
                    break
            count = len(peers)
            for p in peers:
                await p.close()
            return count, status
        count, status = run(body())
        self.assertLessEqual(count, 8)
        self.assertEqual(status, 503)

    def test_topic_limit(self):
        async def body():
            c = await Peer.connect(self.server, "/consumer/websocket", service="topics-svc")
            await c.request("event:a", "phx_join", {"partition_count": 1})
            await c.request("event:b", "phx_join", {"partition_count": 1})
            with self.assertRaises(ReplyError) as ctx:
                await c.request("event:c", "phx_join", {"partition_count": 1})
            await c.close()
            return ctx.exception.response["reason"]
        self.assertIn("joined topic limit of 2", run(body()))

    def test_partition_limit_names_both(self):
        async def body():
            with self.assertRaises(ReplyError) as ctx:
                await Peer.consumer(self.server, "wide-svc", join={"partition_count": 9})
            return ctx.exception.response["reason"]
        reason = run(body())
        self.assertIn("partition_count 9 exceeds", reason)
        self.assertIn("limit of 8 partitions", reason)
        self.assertIn("--max-partitions", reason)

    def test_pending_limit_per_partition(self):
        async def body():
            c = await Peer.consumer(self.server, "full-svc", topic="fill:up",
                                    join={"partition_count": 1, "ack": True})
            await c.close()
            p = await Peer.producer(self.server)
            for i in range(5):
                await p.emit("fill:up", {"i": i})
            with self.assertRaises(ReplyError) as ctx:
                await p.emit("fill:up", {"i": 5})
            other = await p.emit("unrelated:event", {})
            await p.close()
            return ctx.exception.response["reason"], other
        reason, other = run(body())
        self.assertIn("full-svc:0", reason)
        self.assertIn("pending", reason)
        self.assertEqual(other["name"], "unrelated:event")

    def test_silent_socket_closed_after_two_intervals(self):
        async def body():
            silent = await Peer.connect(self.server, "/producer/websocket")
            alive = await Peer.connect(self.server, "/producer/websocket")
            start = time.monotonic()
            beat = asyncio.ensure_future(self.beating(alive, 1.6))
            code, reason = await asyncio.wait_for(silent.closed, 5)
            elapsed = time.monotonic() - start
            await beat
            resp = await alive.request("phoenix", "heartbeat", {})
            await alive.close()
            return code, reason, elapsed, resp
        code, reason, elapsed, resp = run(body())
        self.assertEqual(code, 1008)
        self.assertIn("no message for 800 ms", reason)
        self.assertGreaterEqual(elapsed, 0.7)
        self.assertLess(elapsed, 2.0)
        self.assertEqual(resp, {})

    def test_emit_rejected_when_push_too_large(self):
        # The emit frames gzip well below 4096 bytes, and the stored events
        # are within --max-inflated-size, so only the pushed form is limited.
        service = "consumers-of-large-events-with-a-long-service-name"
        sizes = list(range(3650, 3900, 10))

        async def body():
            consumer = await Peer.consumer(self.server, service, topic="large.event",
                                           join={"partition_count": 1, "ack": True})
            producer = await Peer.producer(self.server)
            accepted, rejected = [], []
            for size in sizes:
                try:
                    event = await producer.emit("large.event", {"s": "a" * size})
                    accepted.append(event["meta"]["uuid"])
                except ReplyError as e:
                    rejected.append((size, str(e)))
                    continue
                # One pending event at a time keeps --max-pending out of the way.
                frame = (await consumer.receive_events(1))[0]
                self.assertEqual(frame["payload"]["event"]["meta"]["uuid"], accepted[-1])
                self.assertLessEqual(consumer.frame_sizes[-1], 4096)
                await consumer.ack(frame)
            health = self.server.service_health(service)
            await producer.close()
            await consumer.close()
            return accepted, rejected, health

        accepted, rejected, health = run(body())
        self.assertTrue(accepted)
        self.assertTrue(rejected)
        for size, reason in rejected:
            self.assertIn("over the maximum frame size of 4096 bytes", reason)
            self.assertIn("to service " + service, reason)
            self.assertIn("--max-frame-size", reason)
        self.assertEqual(health["pending"], 0)
        # Every rejected size is larger than every accepted one.
        self.assertGreater(min(s for s, _ in rejected), sizes[len(accepted) - 1])


class LogTest(unittest.TestCase):
    def setUp(self):
        self.server = hvtest.Server(api_key="right-key").start()

    def tearDown(self):
        code = self.server.stop()
        log = self.server.read_log()
        self.server.cleanup()
        self.assertEqual(code, 0, log)

    async def rejected_upgrade(self):
        url = self.server.url("/producer/websocket", vsn="1.0.0", api_key="wrong-key-123")
        with self.assertRaises(websockets.InvalidStatusCode) as raised:
            await websockets.connect(url, close_timeout=1)
        self.assertEqual(raised.exception.status_code, 403)

    def test_rejected_upgrades_rate_limited(self):
        attempts = 300

        async def body():
            start = time.monotonic()
            for _ in range(attempts):
                await self.rejected_upgrade()
            elapsed = time.monotonic() - start
            await asyncio.sleep(1.1)
            await self.rejected_upgrade()
            return elapsed

        elapsed = run(body())
        log = self.server.read_log()
        lines = [l for l in log.splitlines() if "rejected with HTTP 403" in l]
        self.assertGreaterEqual(len(lines), 2)
        self.assertLessEqual(len(lines), int(elapsed) + 3)
        for line in lines:
            self.assertIn("upgrade from 127.0.0.1", line)
        logged_counts = [int(l.split("(")[1].split()[0]) for l in lines if "not logged" in l]
        self.assertEqual(len(lines) + sum(logged_counts), attempts + 1)
        self.assertNotIn("wrong-key-123", log)
        self.assertNotIn("right-key", log)

    def test_invalid_frame_names_client(self):
        async def body():
            producer = await Peer.producer(self.server, client_id="broken-producer")
            consumer = await Peer.consumer(self.server, "broken-svc", name="broken-instance")
            for peer in (producer, consumer):
                await peer.ws.send(b"\xc1 not msgpack")
                code, _ = await asyncio.wait_for(peer.closed, 5)
                self.assertEqual(code, 1007)

        run(body())
        log = self.server.read_log()
        self.assertRegex(log, r"\(127\.0\.0\.1, client_id broken-producer\): invalid frame")
        self.assertRegex(log, r"\(127\.0\.0\.1, service broken-svc, name broken-instance\): "
                              r"invalid frame")


if __name__ == "__main__":
    unittest.main(verbosity=2)
