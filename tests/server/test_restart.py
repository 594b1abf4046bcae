"""Durability: kill -9 during a stream of acknowledged emits, then restart."""

import asyncio
import time
import unittest
import uuid

import hvtest
from hvtest import Peer, run


class RestartTest(unittest.TestCase):
    def setUp(self):
        self.server = hvtest.Server().start()

    def tearDown(self):
        code = self.server.stop()
        log = self.server.read_log()
        self.server.cleanup()
        self.assertEqual(code, 0, log)

    def test_kill_during_emits_keeps_acknowledged(self):
        acknowledged = set()
        sent = 0

        async def stream(producer):
            nonlocal sent
            pending = {}
            try:
                for i in range(200000):
                    given = str(uuid.uuid4())
                    ref = await producer.send("ingress:all", "event:emit", {
                        "name": "payment:captured", "payload": {"i": i, "pad": "p" * 200},
                        "meta": {"version": 1, "key": "k%d" % (i % 50), "uuid": given,
                                 "producer": "crash-test"}})
                    sent += 1
                    pending[ref] = given
                    if len(pending) >= 64:
                        ref0 = min(pending)
                        frame = await producer.reply(ref0)
                        if frame["payload"]["status"] == "ok":
                            acknowledged.add(pending[ref0])
                        del pending[ref0]
            except (ConnectionError, asyncio.TimeoutError, hvtest.websockets.ConnectionClosed):
                pass

        async def before_crash():
            c = await Peer.consumer(self.server, "ledger", topic="payment:captured",
                                    join={"ack": True, "partition_count": 8})
            await c.close()
            producer = await Peer.producer(self.server)
            task = asyncio.ensure_future(stream(producer))
            deadline = time.monotonic() + 10
            while len(acknowledged) < 2000 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            self.server.kill()
            await asyncio.wait_for(task, 15)

        run(before_crash())
        self.assertGreaterEqual(len(acknowledged), 2000)
        self.assertGreater(sent, len(acknowledged))
        self.server.start()

        async def after_restart():
            c = await Peer.consumer(self.server, "ledger", topic="payment:captured",
                                    join={"ack": True, "partition_count": 8, "prefetch": 1000})
            received = set()
            deadline = time.monotonic() + 30
            while not acknowledged <= received and time.monotonic() < deadline:
                try:
                    frame = await c.next_push(timeout=1)
                except asyncio.TimeoutError:
                    continue
                if frame["event"] == "event:received":
                    received.add(frame["payload"]["event"]["meta"]["uuid"])
                    await c.send(frame["topic"], "event:ack",
                                 {"queue": frame["payload"]["queue"],
                                  "uuid": frame["payload"]["event"]["meta"]["uuid"]})
            await c.close()
            return received

        received = run(after_restart())
        missing = acknowledged - received
        self.assertFalse(missing, "%d of %d acknowledged emits lost" % (len(missing),
                                                                       len(acknowledged)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
