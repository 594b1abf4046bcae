"""A backlog larger than the bodies hiventd keeps in memory: the bodies are
read back from the store, in order, after an owner change and a restart."""

import unittest

import hvtest
from hvtest import Peer, run

COUNT = 3000
KEYS = 4
PAD = 1000              # 3000 events of about 1.1 KB: far over 512 KiB


def pad_of(i):
    return ("%05d" % i) * (PAD // 5)


class BacklogTest(unittest.TestCase):
    def setUp(self):
        self.server = hvtest.Server(args=["--log-level", "debug"]).start()

    def tearDown(self):
        code = self.server.stop()
        log = self.server.read_log()
        self.server.cleanup()
        self.assertEqual(code, 0, log)

    def check(self, frames, last_of_key):
        """Checks payloads and per-key order (repeats allowed); returns the i seen."""
        seen = set()
        for frame in frames:
            event = frame["payload"]["event"]
            i = event["payload"]["i"]
            self.assertEqual(event["payload"]["pad"], pad_of(i), "body of event %d" % i)
            key = event["meta"]["key"]
            self.assertEqual(key, "k%d" % (i % KEYS))
            if i not in seen and i not in last_of_key.get("done", set()):
                self.assertGreater(i, last_of_key.get(key, -1), "order of key %s" % key)
                last_of_key[key] = i
            seen.add(i)
        return seen

    async def consume(self, peer, count):
        """Receives @count events, acknowledging each; returns the frames."""
        frames = []
        while len(frames) < count:
            batch = await peer.receive_events(1)
            frames += batch
            await peer.send(batch[0]["topic"], "event:ack",
                            {"queue": batch[0]["payload"]["queue"],
                             "uuid": batch[0]["payload"]["event"]["meta"]["uuid"]})
        # Acks are handled in order: a reply to one more means all were.
        await peer.ack(frames[-1])
        return frames

    def test_backlog_over_the_body_budget(self):
        done = set()
        order = {"done": done}

        async def fill():
            c = await Peer.consumer(self.server, "backlog", topic="order:placed",
                                    join={"ack": True, "partition_count": 2})
            await c.close()
            producer = await Peer.producer(self.server)
            refs = []
            for i in range(COUNT):
                refs.append(await producer.send("ingress:all", "event:emit", {
                    "name": "order:placed", "payload": {"i": i, "pad": pad_of(i)},
                    "meta": {"version": 1, "key": "k%d" % (i % KEYS),
                             "producer": "backlog-test"}}))
                if len(refs) >= 200:
                    for ref in refs:
                        frame = await producer.reply(ref)
                        self.assertEqual(frame["payload"]["status"], "ok", frame)
                    refs = []
            for ref in refs:
                frame = await producer.reply(ref)
                self.assertEqual(frame["payload"]["status"], "ok", frame)
            await producer.close()
            self.assertEqual(self.server.service_health("backlog")["pending"], COUNT)

            # Takes 50 events without acking them and leaves: the next owner
            # gets them again, read back from the store.
            first = await Peer.consumer(self.server, "backlog", topic="order:placed",
                                        join={"ack": True, "partition_count": 2,
                                              "prefetch": 50})
            frames = await first.receive_events(50)
            self.check(frames, {})
            await first.close()

            second = await Peer.consumer(self.server, "backlog", topic="order:placed",
                                         join={"ack": True, "partition_count": 2,
                                               "prefetch": 100})
            frames = await self.consume(second, 1200)
            got = self.check(frames, order)
            await second.close()
            return got

        acked = run(fill())
        done.update(acked)
        self.assertEqual(self.server.stop(), 0)
        self.server.start()

        async def after_restart():
            self.assertEqual(self.server.service_health("backlog")["pending"],
                             COUNT - len(acked))
            c = await Peer.consumer(self.server, "backlog", topic="order:placed",
                                    join={"ack": True, "partition_count": 2, "prefetch": 100})
            frames = await self.consume(c, COUNT - len(acked))
            got = self.check(frames, order)
            await c.close()
            return got

        rest = run(after_restart())
        # The bodies came from the store, not from memory.
        self.assertIn("bodies of queue backlog:", self.server.read_log())
        self.assertFalse(acked & rest, "acknowledged events delivered again after a restart")
        self.assertEqual(acked | rest, set(range(COUNT)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
