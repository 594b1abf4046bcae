"""Consumer tests of hiventd: ack, prefetch, quarantine, redelivery, dead-letter admin."""

import asyncio
import http.client
import json
import random
import unittest

import hvtest
from hvtest import Peer, ReplyError, run


class ConsumeTest(unittest.TestCase):
    def setUp(self):
        self.server = hvtest.Server(admin_key="admin-key-1").start()

    def tearDown(self):
        code = self.server.stop()
        log = self.server.read_log()
        self.server.cleanup()
        self.assertEqual(code, 0, log)
        self.assertNotIn("admin-key-1", log)

    def test_quarantine_and_ack(self):
        async def body():
            c = await Peer.consumer(self.server, "billing", topic="invoice:due",
                                    join={"ack": True, "partition_count": 2})
            p = await Peer.producer(self.server)
            for i in range(4):
                await p.emit("invoice:due", {"i": i}, key="same-key")
            got = await c.receive_events(4)
            self.assertEqual([f["payload"]["event"]["payload"]["i"] for f in got], [0, 1, 2, 3])
            queue = got[0]["payload"]["queue"]
            self.assertRegex(queue, r"^billing:[01]$")
            await c.request(got[1]["topic"], "event:quarantine",
                            {"event": got[1]["payload"]["event"], "queue": queue,
                             "reason": "amount is negative"})
            await c.request(got[2]["topic"], "event:quarantine",
                            {"event": got[2]["payload"]["event"], "queue": queue})
            await c.ack(got[0])
            await c.ack(got[3])
            await c.ack(got[3])  # a repeated ack succeeds
            with self.assertRaises(ReplyError):
                await c.request(got[0]["topic"], "event:ack",
                                {"queue": "other-service:0", "uuid": "x"})
            await p.close()
            await c.close()
            return got, queue
        got, queue = run(body())
        svc = self.server.service_health("billing")
        self.assertEqual(svc["pending"], 0)

        status, text = self.server.http("GET", "/admin/dlq", service="billing")
        self.assertEqual(status, 401, text)
        status, text = self.server.http("GET", "/admin/dlq", token="wrong", service="billing")
        self.assertEqual(status, 401, text)
        status, text = self.server.http("GET", "/admin/dlq", token="admin-key-1",
                                        service="billing")
        self.assertEqual(status, 200, text)
        events = json.loads(text)["events"]
        self.assertEqual(len(events), 2)
        self.assertEqual(events[0]["queue"], queue + ":dead_letter")
        self.assertEqual(events[0]["reason"], "amount is negative")
        self.assertEqual(events[0]["event"]["payload"], {"i": 1})
        self.assertEqual(events[1]["event"]["meta"]["uuid"],
                         got[2]["payload"]["event"]["meta"]["uuid"])
        self.assertIsInstance(events[0]["id"], int)
        status, text = self.server.http("GET", "/admin/dlq", token="admin-key-1",
                                        service="billing", limit=1)
        self.assertEqual(len(json.loads(text)["events"]), 1)

        _, metrics = self.server.http("GET", "/metrics")
        self.assertIn('hivent_events_dead_lettered_total{service="billing"} 2', metrics)
        self.assertIn('hivent_events_acknowledged_total{service="billing"} 2', metrics)
        self.assertIn('hivent_events_emitted_total{service="billing"} 4', metrics)

        async def replay():
            c = await Peer.consumer(self.server, "billing", topic="invoice:due",
                                    join={"ack": True, "partition_count": 2})
            status, text = self.server.http("POST", "/admin/dlq/replay", token="admin-key-1",
                                            service="billing")
            self.assertEqual(status, 200, text)
            self.assertEqual(json.loads(text), {"replayed": 2}, text)
            again = await c.receive_events(2)
            await c.request(again[0]["topic"], "event:quarantine",
                            {"event": again[0]["payload"]["event"],
                             "queue": again[0]["payload"]["queue"], "reason": "still bad"})
            await c.ack(again[1])
            await c.close()
            return again
        again = run(replay())
        self.assertEqual(sorted(f["payload"]["event"]["payload"]["i"] for f in again), [1, 2])
        status, text = self.server.http("POST", "/admin/dlq/purge", token="admin-key-1",
                                        service="billing", partition=int(queue[-1]))
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text), {"purged": 1})
        status, text = self.server.http("GET", "/admin/dlq", token="admin-key-1",
                                        service="billing")
        self.assertEqual(json.loads(text), {"events": []})
        status, _ = self.server.http("GET", "/admin/dlq", token="admin-key-1", service="nope")
        self.assertEqual(status, 404)
        status, _ = self.server.http("GET", "/admin/dlq", token="admin-key-1",
                                     service="billing", partition=9)
        self.assertEqual(status, 400)

    def quarantine_in_order(self, service, keys):
        """Emits one event per key and quarantines them in the order of @keys.

        Each quarantine waits for its reply, which hiventd sends after the
        dead letter is committed, so dead-letter ids follow @keys.  Returns
        the queue of each dead letter, in that order.
        """
        async def body():
            c = await Peer.consumer(self.server, service, topic="dlq:order",
                                    join={"ack": True, "partition_count": 2})
            p = await Peer.producer(self.server)
            for i, key in enumerate(keys):
                await p.emit("dlq:order", {"i": i}, key=key)
            got = await c.receive_events(len(keys))
            by_index = {f["payload"]["event"]["payload"]["i"]: f for f in got}
            queues = []
            for i in range(len(keys)):
                frame = by_index[i]
                await c.request(frame["topic"], "event:quarantine",
                                {"event": frame["payload"]["event"],
                                 "queue": frame["payload"]["queue"], "reason": "r%d" % i})
                queues.append(frame["payload"]["queue"])
            await p.close()
            await c.close()
            return queues
        return run(body())

    def raw_request(self, method, path):
        """Returns (status, Allow header, body) of one request with the admin key."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request(method, path, headers={"Authorization": "Bearer admin-key-1"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Allow"), resp.read().decode()
        finally:
            conn.close()

    def test_wrong_method_gets_405(self):
        queues = self.quarantine_in_order("methods", ["a", "b"])
        self.assertEqual(len(queues), 2)
        routes = [("/admin/dlq?service=methods", "GET"),
                  ("/admin/dlq/replay?service=methods", "POST"),
                  ("/admin/dlq/purge?service=methods", "POST"),
                  ("/health", "GET"),
                  ("/metrics", "GET")]
        for path, allowed in routes:
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                if method == allowed:
                    continue
                with self.subTest(path=path, method=method):
                    status, allow, body = self.raw_request(method, path)
                    self.assertEqual(status, 405, body)
                    self.assertEqual(allow, allowed)
                    self.assertIn("accepts only " + allowed, json.loads(body)["error"])
        status, text = self.server.http("GET", "/admin/dlq", token="admin-key-1",
                                        service="methods")
        self.assertEqual(status, 200, text)
        self.assertEqual(len(json.loads(text)["events"]), 2)
        self.assertEqual(self.server.service_health("methods")["pending"], 0)

    def test_dlq_list_oldest_first(self):
        # crc32(key) mod 2: "a" and "b" go to partition 1, "d" and "e" to partition 0.
        queues = self.quarantine_in_order("ordered", ["a", "d", "b", "e"])
        self.assertEqual(queues, ["ordered:1", "ordered:0", "ordered:1", "ordered:0"])
        status, text = self.server.http("GET", "/admin/dlq", token="admin-key-1",
                                        service="ordered")
        self.assertEqual(status, 200, text)
        events = json.loads(text)["events"]
        self.assertEqual([e["reason"] for e in events], ["r0", "r1", "r2", "r3"])
        ids = [e["id"] for e in events]
        self.assertEqual(ids, sorted(ids))

    def test_dlq_json_of_values_json_lacks(self):
        payload = {"bin": b"\x00\xff", "nan": float("nan"), "inf": float("inf"),
                   "big": 2**64 - 1, "max": 2**63 - 1, 7: "int key"}

        async def body():
            c = await Peer.consumer(self.server, "lossy", topic="lossy:event",
                                    join={"ack": True, "partition_count": 1})
            p = await Peer.producer(self.server)
            await p.emit("lossy:event", payload)
            got = (await c.receive_events(1))[0]
            await c.request(got["topic"], "event:quarantine",
                            {"event": got["payload"]["event"], "queue": got["payload"]["queue"]})
            await p.close()
            await c.close()
        run(body())
        status, text = self.server.http("GET", "/admin/dlq", token="admin-key-1",
                                        service="lossy")
        self.assertEqual(status, 200, text)
        converted = json.loads(text)["events"][0]["event"]["payload"]
        self.assertEqual(converted["bin"], "AP8=")
        self.assertIsNone(converted["nan"])
        self.assertIsNone(converted["inf"])
        self.assertIsInstance(converted["big"], float)
        self.assertEqual(converted["max"], 2**63 - 1)
        self.assertEqual(converted["7"], "int key")

    def test_admin_errors_name_values(self):
        self.quarantine_in_order("named", ["a"])
        status, text = self.server.http("GET", "/admin/dlq", token="admin-key-1",
                                        service="nope")
        self.assertEqual(status, 404, text)
        self.assertIn("unknown service nope", json.loads(text)["error"])
        for partition in ("2", "-1", "x"):
            with self.subTest(partition=partition):
                status, text = self.server.http("POST", "/admin/dlq/purge",
                                                token="admin-key-1", service="named",
                                                partition=partition)
                self.assertEqual(status, 400, text)
                error = json.loads(text)["error"]
                self.assertIn("invalid partition '%s'" % partition, error)
                self.assertIn("service named has partition_count 2", error)
                self.assertIn("from 0 to 1", error)

    def test_prefetch_limits_unacked(self):
        async def body():
            c = await Peer.consumer(self.server, "slow", topic="job:run",
                                    join={"ack": True, "prefetch": 3, "partition_count": 1})
            p = await Peer.producer(self.server)
            for i in range(10):
                await p.emit("job:run", {"i": i})
            first = await c.receive_events(3)
            with self.assertRaises(asyncio.TimeoutError):
                await c.next_push(timeout=0.5)
            await c.ack(first[0])
            fourth = await c.receive_events(1)
            await p.close()
            await c.close()
            return first + fourth
        got = run(body())
        self.assertEqual([f["payload"]["event"]["payload"]["i"] for f in got], [0, 1, 2, 3])

    def test_unacked_redelivered_to_next_owner(self):
        async def body():
            a = await Peer.consumer(self.server, "redo", topic="task:new", name="a",
                                    join={"ack": True, "partition_count": 1})
            p = await Peer.producer(self.server)
            for i in range(5):
                await p.emit("task:new", {"i": i})
            got_a = await a.receive_events(5)
            await a.ack(got_a[0])
            await a.ack(got_a[1])
            b = await Peer.consumer(self.server, "redo", topic="task:new", name="b",
                                    join={"ack": True, "partition_count": 1})
            with self.assertRaises(asyncio.TimeoutError):
                await b.next_push(timeout=0.3)
            await a.close()
            got_b = await b.receive_events(3)
            for f in got_b:
                await b.ack(f)
            await p.close()
            await b.close()
            return got_b
        got_b = run(body())
        self.assertEqual([f["payload"]["event"]["payload"]["i"] for f in got_b], [2, 3, 4])
        self.assertEqual(self.server.service_health("redo")["pending"], 0)

    def test_ack_only_by_delivered_consumer(self):
        async def body():
            a = await Peer.consumer(self.server, "owned", topic="order:new", name="a",
                                    join={"ack": True, "prefetch": 1, "partition_count": 1})
            p = await Peer.producer(self.server)
            sent = [await p.emit("order:new", {"i": i}) for i in range(2)]
            delivered = (await a.receive_events(1))[0]

            # b joins a service of one partition that a keeps, so b owns none.
            b = await Peer.consumer(self.server, "owned", topic="order:new", name="b",
                                    join={"ack": True, "partition_count": 1})
            queue = delivered["payload"]["queue"]
            errors = []
            for uuid in (sent[1]["meta"]["uuid"], sent[0]["meta"]["uuid"]):
                with self.assertRaises(ReplyError) as raised:
                    await b.request("event:order:new", "event:ack",
                                    {"queue": queue, "uuid": uuid})
                errors.append((uuid, str(raised.exception)))
            with self.assertRaises(ReplyError) as raised:
                await b.request("event:order:new", "event:quarantine",
                                {"event": delivered["payload"]["event"], "queue": queue,
                                 "reason": "not mine"})
            errors.append((sent[0]["meta"]["uuid"], str(raised.exception)))
            pending_after_b = self.server.service_health("owned")["pending"]

            # An ack of a uuid no longer (or never) pending stays an idempotent ok.
            await b.request("event:order:new", "event:ack",
                            {"queue": queue, "uuid": "00000000-0000-7000-8000-000000000000"})
            await a.ack(delivered)
            await a.ack(delivered)
            second = (await a.receive_events(1))[0]
            await a.ack(second)

            await p.close()
            await a.close()
            await b.close()
            return sent, delivered, second, errors, pending_after_b

        sent, delivered, second, errors, pending_after_b = run(body())
        self.assertEqual(delivered["payload"]["event"]["meta"]["uuid"], sent[0]["meta"]["uuid"])
        self.assertEqual(second["payload"]["event"]["meta"]["uuid"], sent[1]["meta"]["uuid"])
        self.assertEqual(pending_after_b, 2)
        for uuid, reason in errors:
            self.assertIn(uuid, reason)
            self.assertIn("queue owned:0", reason)
            self.assertIn("not delivered to this consumer", reason)
        self.assertEqual(self.server.service_health("owned")["pending"], 0)
        status, text = self.server.http("GET", "/admin/dlq", token="admin-key-1", service="owned")
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text)["events"], [])

    def test_acks_in_any_order_complete_each_event(self):
        """Acks in shuffled order, repeated acks and acks after completion
        complete exactly the named events of a partition of 300."""
        async def body():
            c = await Peer.consumer(self.server, "shuffle", topic="item:new",
                                    join={"ack": True, "prefetch": 1000, "partition_count": 1})
            p = await Peer.producer(self.server)
            for i in range(300):
                await p.emit("item:new", {"i": i})
            got = await c.receive_events(300)
            order = list(range(300))
            random.Random(7).shuffle(order)
            acked = order[:200]
            for n, i in enumerate(acked):
                await c.ack(got[i])
                if n % 10 == 0:
                    await c.ack(got[acked[n // 2]])  # acked before: succeeds, changes nothing
            await p.close()
            await c.close()
            return sorted(order[200:])
        left = run(body())
        self.assertEqual(self.server.service_health("shuffle")["pending"], 100)

        async def again():
            c = await Peer.consumer(self.server, "shuffle", topic="item:new",
                                    join={"ack": True, "prefetch": 1000, "partition_count": 1})
            got = await c.receive_events(100)
            with self.assertRaises(asyncio.TimeoutError):
                await c.next_push(timeout=0.3)
            for f in got:
                await c.ack(f)
            await c.close()
            return [f["payload"]["event"]["payload"]["i"] for f in got]
        self.assertEqual(run(again()), left)
        self.assertEqual(self.server.service_health("shuffle")["pending"], 0)

    def test_without_ack_done_once_pushed(self):
        async def body():
            a = await Peer.consumer(self.server, "noack", topic="ping", join={"partition_count": 1})
            p = await Peer.producer(self.server)
            for i in range(3):
                await p.emit("ping", {"i": i})
            got = await a.receive_events(3)
            await a.close()
            b = await Peer.consumer(self.server, "noack", topic="ping", join={"partition_count": 1})
            with self.assertRaises(asyncio.TimeoutError):
                await b.next_push(timeout=0.5)
            await b.close()
            await p.close()
            return got
        self.assertEqual(len(run(body())), 3)
        self.assertEqual(self.server.service_health("noack")["pending"], 0)

    def test_unacked_redelivered_after_restart(self):
        async def first():
            c = await Peer.consumer(self.server, "durable", topic="doc:saved",
                                    join={"ack": True, "partition_count": 2})
            p = await Peer.producer(self.server)
            for i in range(6):
                await p.emit("doc:saved", {"i": i}, key="k%d" % (i % 2))
            got = await c.receive_events(6)
            for f in got[:2]:
                await c.ack(f)
            await p.close()
            await c.close()
            return {f["payload"]["event"]["meta"]["uuid"] for f in got[2:]}
        unacked = run(first())
        self.assertEqual(self.server.stop(), 0)
        self.server.start()

        async def second():
            c = await Peer.consumer(self.server, "durable", topic="doc:saved",
                                    join={"ack": True, "partition_count": 2})
            got = await c.receive_events(4)
            with self.assertRaises(asyncio.TimeoutError):
                await c.next_push(timeout=0.3)
            await c.close()
            return {f["payload"]["event"]["meta"]["uuid"] for f in got}
        self.assertEqual(run(second()), unacked)


if __name__ == "__main__":
    unittest.main(verbosity=2)
