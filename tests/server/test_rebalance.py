"""Rebalancing: a service goes from 1 to 3 to 2 consumers under a stream of keyed events."""

import asyncio
import collections
import time
import unittest

import hvtest
from hvtest import Peer, run

PARTITIONS = 12
KEYS = ["key-%d" % i for i in range(24)]
EVENTS_PER_PHASE = 500


class Consumer:
    """A consumer instance that acks every event right after recording it."""

    def __init__(self, name):
        self.name = name
        self.log = []           # (key, n, uuid, queue) in receive order
        self.peer = None
        self.task = None

    async def start(self, server):
        self.peer = await Peer.consumer(server, "rebalance", topic="stock:moved", name=self.name,
                                        join={"ack": True, "prefetch": 32,
                                              "partition_count": PARTITIONS})
        self.task = asyncio.ensure_future(self.run())

    async def run(self):
        try:
            while True:
                frame = await self.peer.pushes.get()
                if frame["event"] != "event:received":
                    continue
                event = frame["payload"]["event"]
                self.log.append((event["payload"]["k"], event["payload"]["n"],
                                 event["meta"]["uuid"], frame["payload"]["queue"]))
                await self.peer.send(frame["topic"], "event:ack",
                                     {"queue": frame["payload"]["queue"],
                                      "uuid": event["meta"]["uuid"]})
        except (asyncio.CancelledError, ConnectionError):
            pass

    async def stop(self):
        self.task.cancel()
        await self.peer.close()


class RebalanceTest(unittest.TestCase):
    def setUp(self):
        self.server = hvtest.Server().start()

    def tearDown(self):
        code = self.server.stop()
        log = self.server.read_log()
        self.server.cleanup()
        self.assertEqual(code, 0, log)

    def assignment(self):
        svc = self.server.service_health("rebalance")
        return {c["name"]: c["partitions"] for c in svc["consumers"]}

    def check_balanced(self, expected_names):
        deadline = time.monotonic() + 5
        while True:
            owned = self.assignment()
            if sorted(owned) == sorted(expected_names):
                break
            if time.monotonic() > deadline:
                self.fail("consumers %s, expected %s" % (sorted(owned), sorted(expected_names)))
            time.sleep(0.05)
        counts = [len(p) for p in owned.values()]
        self.assertLessEqual(max(counts) - min(counts), 1, owned)
        every = sorted(p for parts in owned.values() for p in parts)
        self.assertEqual(every, list(range(PARTITIONS)), owned)
        return owned

    def test_one_three_two_consumers(self):
        emitted = {}
        next_n = collections.Counter()

        async def emit_stream(producer, count):
            """Emits @count keyed events, up to 16 in flight, paced over a few seconds."""
            pending = []
            for i in range(count):
                key = KEYS[i % len(KEYS)]
                n = next_n[key]
                next_n[key] += 1
                ref = await producer.send("ingress:all", "event:emit", {
                    "name": "stock:moved", "payload": {"k": key, "n": n},
                    "meta": {"version": 1, "key": key, "producer": "rb"}})
                pending.append(ref)
                if len(pending) >= 16:
                    frame = await producer.reply(pending.pop(0))
                    self.assertEqual(frame["payload"]["status"], "ok")
                    emitted[frame["payload"]["response"]["meta"]["uuid"]] = frame
                    await asyncio.sleep(0.003)
            for ref in pending:
                frame = await producer.reply(ref)
                self.assertEqual(frame["payload"]["status"], "ok")
                emitted[frame["payload"]["response"]["meta"]["uuid"]] = frame

        async def wait_emitted(count):
            deadline = time.monotonic() + 30
            while len(emitted) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.01)

        async def body():
            a, b, c = Consumer("a"), Consumer("b"), Consumer("c")
            await a.start(self.server)
            producer = await Peer.producer(self.server)
            self.check_balanced(["a"])
            stream = asyncio.ensure_future(emit_stream(producer, 3 * EVENTS_PER_PHASE))

            await wait_emitted(EVENTS_PER_PHASE)
            await b.start(self.server)
            await c.start(self.server)
            phase_three = self.check_balanced(["a", "b", "c"])

            await wait_emitted(2 * EVENTS_PER_PHASE)
            await b.stop()
            phase_two = self.check_balanced(["a", "c"])
            await stream

            deadline = time.monotonic() + 20
            while True:
                seen = {e[2] for x in (a, b, c) for e in x.log}
                if seen >= set(emitted) and self.server.service_health("rebalance")["pending"] == 0:
                    break
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            await a.stop()
            await c.stop()
            await producer.close()
            return a, b, c, phase_three, phase_two

        a, b, c, phase_three, phase_two = run(body(), timeout=90)
        consumers = (a, b, c)

        seen = {e[2] for x in consumers for e in x.log}
        missing = set(emitted) - seen
        self.assertEqual(len(emitted), 3 * EVENTS_PER_PHASE)
        self.assertFalse(missing, "%d acknowledged emits never delivered" % len(missing))
        self.assertEqual(self.server.service_health("rebalance")["pending"], 0)

        for x in consumers:
            self.assertTrue(x.log, "consumer %s received nothing" % x.name)
            last = {}
            for key, n, _, _ in x.log:
                with self.subTest(consumer=x.name, key=key):
                    self.assertGreater(n, last.get(key, -1), "order of %s broken" % key)
                last[key] = n

        # Each key maps to one partition, so one key never appears in two queues.
        queues = collections.defaultdict(set)
        for x in consumers:
            for key, _, _, queue in x.log:
                queues[key].add(queue)
        for key, qs in queues.items():
            self.assertEqual(len(qs), 1, "key %s in queues %s" % (key, qs))

        # Events of the last phase came only from the partitions each consumer owned.
        for x in (a, c):
            owned = {"rebalance:%d" % p for p in phase_two[x.name]}
            tail = x.log[-50:]
            self.assertTrue({q for _, _, _, q in tail} <= owned, x.name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
