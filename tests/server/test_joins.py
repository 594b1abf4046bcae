"""Consumer joins and the store: a join is confirmed only once its service
and subscription are committed.

Write failures are injected with SQLite triggers that abort inserts into
the services or subscriptions table.  hiventd's writer connection runs a
trigger created by another connection from its next statement on,
because SQLite prepares statements again after a schema change.
"""

import asyncio
import os
import re
import sqlite3
import unittest

import hvtest
from hvtest import Peer, ReplyError, run


def metric(server, name):
    status, text = server.http("GET", "/metrics")
    assert status == 200, text
    match = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert match, "metric %s missing:\n%s" % (name, text)
    return int(match.group(1))


class JoinStoreTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = hvtest.Server().start()
        cls.db_path = os.path.join(cls.server.data_dir, "db", "hivent.db")

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        log = cls.server.read_log()
        cls.server.cleanup()
        assert code == 0, "hiventd exit code %r\n%s" % (code, log)

    def sql(self, statement, *args):
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            rows = db.execute(statement, args).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    def fail_inserts(self, table, column, value):
        """Makes inserts into @table whose @column is @value fail until the
        returned trigger is dropped."""
        trigger = "fail_%s_%s" % (table, re.sub(r"\W", "_", value))
        self.sql("CREATE TRIGGER %s BEFORE INSERT ON %s WHEN NEW.%s = '%s' "
                 "BEGIN SELECT RAISE(ABORT, 'injected write failure'); END"
                 % (trigger, table, column, value))
        self.addCleanup(self.sql, "DROP TRIGGER IF EXISTS %s" % trigger)
        return trigger

    def test_failed_subscription_rejects_join(self):
        self.fail_inserts("subscriptions", "topic", "audit:failed")

        async def body():
            c = await Peer.connect(self.server, "/consumer/websocket", service="auditor",
                                   name="auditor-1")
            with self.assertRaises(ReplyError) as caught:
                await c.request("event:audit:failed", "phx_join", {"partition_count": 2})
            # The channel is gone, so other frames on its topic are rejected.
            with self.assertRaises(ReplyError) as unmatched:
                await c.request("event:audit:failed", "event:ack",
                                {"queue": "auditor:0", "uuid": "x"})
            await c.close()
            return caught.exception.response["reason"], unmatched.exception.response["reason"]

        reason, unmatched = run(body())
        self.assertIn("auditor", reason)
        self.assertIn("audit:failed", reason)
        self.assertIn("injected write failure", reason)
        self.assertEqual(unmatched, "unmatched topic")
        self.assertIsNone(self.server.service_health("auditor"))
        self.assertEqual(self.sql("SELECT topic FROM subscriptions WHERE service = 'auditor'"),
                         [])
        log = self.server.read_log()
        self.assertNotIn("service auditor now receives", log)
        self.assertRegex(log, r"error store: .*auditor.*audit:failed.*injected write failure")

    def test_failed_service_row_rejects_join(self):
        self.fail_inserts("services", "name", "billing-broken")

        async def body():
            c = await Peer.connect(self.server, "/consumer/websocket", service="billing-broken",
                                   name="billing-1")
            with self.assertRaises(ReplyError) as caught:
                await c.request("event:invoice:paid", "phx_join", {"partition_count": 3})
            await c.close()
            return caught.exception.response["reason"]

        reason = run(body())
        self.assertIn("billing-broken", reason)
        self.assertIn("injected write failure", reason)
        self.assertIsNone(self.server.service_health("billing-broken"))

    def test_failed_topic_keeps_other_subscriptions(self):
        async def body():
            c = await Peer.consumer(self.server, "shipping", topic="parcel:sent",
                                    join={"partition_count": 2})
            self.fail_inserts("subscriptions", "topic", "parcel:lost")
            with self.assertRaises(ReplyError):
                await c.request("event:parcel:lost", "phx_join", {"partition_count": 2})
            p = await Peer.producer(self.server)
            await p.emit("parcel:lost", {"n": 1})
            sent = await p.emit("parcel:sent", {"n": 2})
            pushes = await c.receive_events(1)
            await p.close()
            await c.close()
            return sent, pushes

        sent, pushes = run(body())
        self.assertEqual(pushes[0]["payload"]["event"]["meta"]["uuid"], sent["meta"]["uuid"])
        health = self.server.service_health("shipping")
        self.assertEqual(health["topics"], ["parcel:sent"])

    def test_join_retried_after_failure_succeeds(self):
        trigger = self.fail_inserts("subscriptions", "topic", "stock:low")

        async def body():
            c = await Peer.connect(self.server, "/consumer/websocket", service="restock",
                                   name="restock-1")
            with self.assertRaises(ReplyError):
                await c.request("event:stock:low", "phx_join", {"partition_count": 1})
            self.sql("DROP TRIGGER %s" % trigger)
            response = await c.request("event:stock:low", "phx_join", {"partition_count": 1})
            await c.close()
            return response

        self.assertEqual(run(body())["ack"], False)
        self.assertEqual(self.sql("SELECT topic FROM subscriptions WHERE service = 'restock'"),
                         [("stock:low",)])

    def test_emit_after_join_reply_is_queued(self):
        async def body():
            p = await Peer.producer(self.server)
            c = await Peer.connect(self.server, "/consumer/websocket", service="mailer",
                                   name="mailer-1")
            await c.request("event:user:signed_up", "phx_join",
                            {"partition_count": 2, "ack": True})
            sent = await p.emit("user:signed_up", {"email": "a@example.com"})
            pushes = await c.receive_events(1)
            await p.close()
            await c.close()
            return sent, pushes

        sent, pushes = run(body())
        uuid = sent["meta"]["uuid"]
        self.assertEqual(pushes[0]["payload"]["event"]["meta"]["uuid"], uuid)
        # Ack mode keeps the entry until the consumer acks it.
        self.assertEqual(self.sql("SELECT service FROM queue WHERE uuid = ?", uuid),
                         [("mailer",)])
        self.assertEqual(self.sql("SELECT partition_count FROM services WHERE name = 'mailer'"),
                         [(2,)])

    def test_join_of_saved_topic_skips_store(self):
        async def body():
            first = await Peer.consumer(self.server, "search", topic="doc:indexed",
                                        join={"partition_count": 2})
            # Wait until no write of the first join is outstanding.
            for _ in range(100):
                if self.server.health()["store_outstanding"] == 0:
                    break
                await asyncio.sleep(0.01)
            before = metric(self.server, "hivent_store_requests_total")
            second = await Peer.consumer(self.server, "search", topic="doc:indexed",
                                         join={"partition_count": 2})
            after = metric(self.server, "hivent_store_requests_total")
            await first.close()
            await second.close()
            return before, after

        before, after = run(body())
        self.assertEqual(after, before)

    def test_repeated_join_while_saving(self):
        async def body():
            c = await Peer.connect(self.server, "/consumer/websocket", service="twice",
                                   name="twice-1")
            first = await c.send("event:item:added", "phx_join", {"partition_count": 1})
            second = await c.send("event:item:added", "phx_join", {"partition_count": 1})
            replies = [await c.reply(first), await c.reply(second)]
            again = await c.request("event:item:added", "phx_join", {"partition_count": 1})
            health = self.server.service_health("twice")
            await c.close()
            return replies, again, health

        replies, again, health = run(body())
        statuses = [r["payload"]["status"] for r in replies]
        self.assertEqual(statuses[0], "ok")
        # The second join arrives while the first waits for the store, or
        # after it was confirmed; either way it must not add a channel.
        if statuses[1] != "ok":
            self.assertIn("waiting", replies[1]["payload"]["response"]["reason"])
        self.assertEqual(again, {})
        self.assertEqual(health["topics"], ["item:added"])
        self.assertEqual(len(health["consumers"]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
