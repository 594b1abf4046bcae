"""Retention pruning of stored event bodies (--retention, --prune-interval).

Each test runs a real hiventd with a retention of 1 to 3 seconds and a
100 ms sweep interval, and reads its SQLite file directly to see which
event rows remain.
"""

import asyncio
import json
import os
import re
import sqlite3
import tempfile
import shutil
import subprocess
import time
import unittest
import uuid

import hvtest
from hvtest import Peer, run

ADMIN_KEY = "retention-admin-key"
FAST_PRUNING = ["--prune-interval", "100"]

def db_file(server):
    return os.path.join(server.data_dir, "db", "hivent.db")


def query(path, sql, params=()):
    """Returns every row of @sql on a connection of its own."""
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def stored_uuids(server):
    return {row[0] for row in query(db_file(server), "SELECT uuid FROM events")}


def wait_until(predicate, timeout, interval=0.05):
    """Polls @predicate until it is true or @timeout seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def metric(server, name):
    """Returns the value of the unlabelled metric @name from /metrics."""
    status, text = server.http("GET", "/metrics")
    assert status == 200, text
    match = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert match, "metric %s missing from /metrics:\n%s" % (name, text)
    return float(match.group(1))


def event_uuid(frame):
    return frame["payload"]["event"]["meta"]["uuid"]


class RetentionTest(unittest.TestCase):
    def setUp(self):
        self.servers = []

    def tearDown(self):
        for server in self.servers:
            code = server.stop()
            log = server.read_log()
            server.cleanup()
            self.assertEqual(code, 0, log)

    def start_server(self, retention, data_dir=None, extra=()):
        args = ["--retention", str(retention)] + FAST_PRUNING + list(extra)
        server = hvtest.Server(admin_key=ADMIN_KEY, args=args, data_dir=data_dir).start()
        self.servers.append(server)
        return server

    def test_acknowledged_events_deleted(self):
        server = self.start_server(1)

        async def body():
            c = await Peer.consumer(server, "billing", topic="invoice:due",
                                    join={"ack": True, "partition_count": 2})
            p = await Peer.producer(server)
            uuids = [(await p.emit("invoice:due", {"i": i}, key="k%d" % i))["meta"]["uuid"]
                     for i in range(30)]
            got = await c.receive_events(30)
            for frame in got:
                await c.ack(frame)
            await p.close()
            await c.close()
            return uuids

        uuids = run(body())
        self.assertEqual(len(set(uuids)), 30)
        remaining = wait_until(lambda: not (stored_uuids(server) & set(uuids)), 10)
        self.assertTrue(remaining, "acknowledged events still stored: %s"
                        % sorted(stored_uuids(server) & set(uuids)))
        self.assertEqual(query(db_file(server), "SELECT count(*) FROM queue"), [(0,)])
        self.assertEqual(metric(server, "hivent_store_events_pruned_total"), 30)
        self.assertEqual(metric(server, "hivent_store_events"), 0)
        self.assertIn("store: retention deleted", server.read_log())

    def test_pending_events_survive_pruning_and_restart(self):
        server = self.start_server(1)
        count = 20

        async def before_restart():
            # The join subscribes "ledger"; leaving keeps its queue filling.
            c = await Peer.consumer(server, "ledger", topic="entry:posted",
                                    join={"ack": True, "partition_count": 1})
            await c.close()
            p = await Peer.producer(server)
            pending = [(await p.emit("entry:posted", {"i": i, "pad": "x" * 300}))["meta"]["uuid"]
                       for i in range(count)]
            # No service subscribed to this name: these rows serve only deduplication.
            unreferenced = [(await p.emit("entry:ignored", {"i": i}))["meta"]["uuid"]
                            for i in range(10)]
            await p.close()
            # The first five are delivered and left unacknowledged.
            c = await Peer.consumer(server, "ledger", topic="entry:posted",
                                    join={"ack": True, "partition_count": 1, "prefetch": 5})
            inflight = await c.receive_events(5)
            return c, pending, unreferenced, inflight

        c, pending, unreferenced, inflight = run(before_restart())
        self.assertEqual([f["payload"]["event"]["payload"]["i"] for f in inflight],
                         [0, 1, 2, 3, 4])
        pruned = wait_until(lambda: not (stored_uuids(server) & set(unreferenced)), 10)
        self.assertTrue(pruned, "unreferenced events were not pruned within 10 s")
        # Several more sweeps run while the pending events are expired.
        time.sleep(1.0)
        self.assertEqual(stored_uuids(server), set(pending))
        run(c.close())
        self.assertEqual(server.stop(), 0, server.read_log())

        server.start()
        time.sleep(1.5)
        self.assertEqual(stored_uuids(server), set(pending))

        async def after_restart():
            c = await Peer.consumer(server, "ledger", topic="entry:posted",
                                    join={"ack": True, "partition_count": 1,
                                          "prefetch": count})
            got = await c.receive_events(count)
            for frame in got:
                await c.ack(frame)
            await c.close()
            return got

        got = run(after_restart())
        self.assertEqual([event_uuid(f) for f in got], pending)
        self.assertEqual([f["payload"]["event"]["payload"] for f in got],
                         [{"i": i, "pad": "x" * 300} for i in range(count)])
        self.assertTrue(wait_until(lambda: not stored_uuids(server), 10),
                        "acknowledged events still stored after the restart")

    def test_dead_letter_replayed_after_pruning(self):
        server = self.start_server(1)

        async def quarantine():
            c = await Peer.consumer(server, "mailer", topic="mail:queued",
                                    join={"ack": True, "partition_count": 1})
            p = await Peer.producer(server)
            for i in range(3):
                await p.emit("mail:queued", {"to": "user%d@example.com" % i})
            await p.close()
            got = await c.receive_events(3)
            await c.request(got[0]["topic"], "event:quarantine",
                            {"event": got[0]["payload"]["event"],
                             "queue": got[0]["payload"]["queue"], "reason": "smtp down"})
            await c.ack(got[1])
            await c.ack(got[2])
            return c, got

        c, got = run(quarantine())
        dead_uuid = event_uuid(got[0])
        self.assertTrue(wait_until(lambda: not stored_uuids(server), 10),
                        "the completed events were not pruned within 10 s")

        status, text = server.http("GET", "/admin/dlq", token=ADMIN_KEY, service="mailer")
        self.assertEqual(status, 200, text)
        listed = json.loads(text)["events"]
        self.assertEqual(len(listed), 1, text)
        self.assertEqual(listed[0]["queue"], "mailer:0:dead_letter")
        self.assertEqual(listed[0]["reason"], "smtp down")
        self.assertEqual(listed[0]["event"]["meta"]["uuid"], dead_uuid)
        self.assertEqual(listed[0]["event"]["payload"], {"to": "user0@example.com"})

        status, text = server.http("POST", "/admin/dlq/replay", token=ADMIN_KEY,
                                   service="mailer")
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text), {"replayed": 1})
        # The replayed event is queued again, so its body is back and pruning keeps it.
        self.assertEqual(stored_uuids(server), {dead_uuid})
        time.sleep(1.5)
        self.assertEqual(stored_uuids(server), {dead_uuid})

        async def receive_replayed():
            again = await c.receive_events(1)
            await c.ack(again[0])
            await c.close()
            return again[0]

        again = run(receive_replayed())
        self.assertEqual(event_uuid(again), dead_uuid)
        self.assertEqual(again["payload"]["event"]["payload"], {"to": "user0@example.com"})
        self.assertEqual(again["payload"]["event"]["name"], "mail:queued")
        status, text = server.http("GET", "/admin/dlq", token=ADMIN_KEY, service="mailer")
        self.assertEqual(json.loads(text), {"events": []})
        self.assertTrue(wait_until(lambda: not stored_uuids(server), 10),
                        "the replayed event was not pruned after its ack")

    def test_retried_uuid_deduplicated_within_window(self):
        server = self.start_server(3)
        retried_uuid = str(uuid.uuid4())

        async def emit_twice():
            p = await Peer.producer(server)
            first = await p.emit("order:placed", {"try": 1}, uuid=retried_uuid)
            retried = await p.emit("order:placed", {"try": 2}, uuid=retried_uuid)
            await p.close()
            return first, retried

        first, retried = run(emit_twice())
        self.assertEqual(first["payload"], {"try": 1})
        self.assertEqual(retried["payload"], {"try": 1})
        self.assertEqual(retried["meta"]["uuid"], retried_uuid)
        self.assertEqual(stored_uuids(server), {retried_uuid})
        self.assertTrue(wait_until(lambda: not stored_uuids(server), 10),
                        "the event was not pruned within 10 s of a 3 s retention")

        async def emit_after_window():
            p = await Peer.producer(server)
            late = await p.emit("order:placed", {"try": 3}, uuid=retried_uuid)
            await p.close()
            return late

        # Past the retention window the uuid is stored again as a new event.
        late = run(emit_after_window())
        self.assertEqual(late["payload"], {"try": 3})
        rows = query(db_file(server), "SELECT count(*) FROM events WHERE uuid = ?",
                     (retried_uuid,))
        self.assertEqual(rows, [(1,)])

    def test_retention_zero_keeps_events(self):
        server = self.start_server(0)

        async def emit():
            p = await Peer.producer(server)
            uuids = [(await p.emit("audit:logged", {"i": i}))["meta"]["uuid"] for i in range(5)]
            await p.close()
            return uuids

        uuids = run(emit())
        time.sleep(1.5)
        self.assertEqual(stored_uuids(server), set(uuids))
        self.assertEqual(metric(server, "hivent_store_events_pruned_total"), 0)
        self.assertEqual(metric(server, "hivent_store_events"), 5)
        self.assertIn("retention off", server.read_log())

    def test_retention_from_environment(self):
        os.environ["HIVENTD_RETENTION"] = "1"
        try:
            server = hvtest.Server(args=FAST_PRUNING).start()
        finally:
            del os.environ["HIVENTD_RETENTION"]
        self.servers.append(server)

        async def emit():
            p = await Peer.producer(server)
            emitted = await p.emit("audit:logged", {"i": 1})
            await p.close()
            return emitted["meta"]["uuid"]

        emitted = run(emit())
        self.assertIn(emitted, stored_uuids(server))
        self.assertTrue(wait_until(lambda: not stored_uuids(server), 10),
                        "HIVENTD_RETENTION=1 did not prune within 10 s")

    def test_database_size_stops_growing(self):
        server = self.start_server(1, extra=["--prune-interval", "200"])
        samples = []
        sent = 0
        received = 0

        async def load():
            nonlocal sent, received
            c = await Peer.consumer(server, "archive", topic="doc:saved",
                                    join={"partition_count": 4})
            p = await Peer.producer(server)
            start = time.monotonic()
            next_sample = start + 4
            # Batches of 20 events of about 1 KiB, then a 50 ms pause, for 20 s
            # (about 350 events per second here), each consumed at once.
            while time.monotonic() - start < 20:
                refs = []
                for _ in range(20):
                    refs.append(await p.send("ingress:all", "event:emit", {
                        "name": "doc:saved", "payload": {"n": sent, "pad": os.urandom(512).hex()},
                        "meta": {"version": 1, "key": "k%d" % sent, "producer": "size-test"}}))
                    sent += 1
                for ref in refs:
                    frame = await p.reply(ref)
                    self.assertEqual(frame["payload"]["status"], "ok", frame)
                while not c.pushes.empty():
                    frame = c.pushes.get_nowait()
                    if frame["event"] == "event:received":
                        received += 1
                if time.monotonic() >= next_sample:
                    samples.append(os.path.getsize(db_file(server)))
                    next_sample += 4
                await asyncio.sleep(0.05)
            await p.close()
            await c.close()

        run(load(), timeout=90)
        self.assertGreater(sent, 2000)
        self.assertGreaterEqual(len(samples), 4, samples)
        emitted_bytes = sent * 1024
        stored = query(db_file(server), "SELECT count(*) FROM events")[0][0]
        # Steady state: the first sample (at 4 s) already contains the retained
        # window, so later samples may add at most a few pages of slack.
        self.assertLessEqual(samples[-1], samples[0] + 256 * 1024,
                             "hivent.db grew from %d to %d bytes (samples %s)"
                             % (samples[0], samples[-1], samples))
        self.assertLess(samples[-1], emitted_bytes / 4, samples)
        self.assertLess(stored, sent / 4, "%d of %d events still stored" % (stored, sent))


class SchemaUpgradeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hiventd-upgrade-")
        self.server = None

    def tearDown(self):
        if self.server:
            code = self.server.stop()
            log = self.server.read_log()
            self.server.cleanup()
            self.assertEqual(code, 0, log)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def make_version_0_database(self):
        """Stores two events with hiventd, then turns the file back into schema version 0.

        Returns (queued uuid, unreferenced uuid, path).  The queued event waits
        in service "ledger"; no service subscribed to the other one, so it is
        kept only for deduplication.
        """
        server = hvtest.Server(args=["--retention", "0"], data_dir=self.tmp).start()

        async def emit():
            c = await Peer.consumer(server, "ledger", topic="entry:posted",
                                    join={"ack": True, "partition_count": 1})
            await c.close()
            p = await Peer.producer(server)
            queued = await p.emit("entry:posted", {"old": 1})
            unreferenced = await p.emit("entry:ignored", {"old": 2})
            await p.close()
            return queued["meta"]["uuid"], unreferenced["meta"]["uuid"]

        try:
            queued, unreferenced = run(emit())
        finally:
            self.assertEqual(server.stop(), 0, server.read_log())
        path = db_file(server)
        db = sqlite3.connect(path)
        db.executescript("DROP INDEX queue_by_uuid;"
                         "ALTER TABLE events DROP COLUMN stored_at;"
                         "PRAGMA user_version = 0;")
        db.close()
        columns = [row[1] for row in query(path, "PRAGMA table_info(events)")]
        self.assertEqual(columns, ["id", "uuid", "body"])
        self.assertEqual(query(path, "PRAGMA user_version"), [(0,)])
        return queued, unreferenced, path

    def test_version_0_database_upgraded(self):
        queued, unreferenced, path = self.make_version_0_database()
        self.server = hvtest.Server(args=["--retention", "2"] + FAST_PRUNING,
                                    data_dir=self.tmp).start()
        self.assertEqual(query(path, "PRAGMA user_version"), [(1,)])
        columns = [row[1] for row in query(path, "PRAGMA table_info(events)")]
        self.assertIn("stored_at", columns)
        # Old rows count as stored at the upgrade, so they outlive the first sweeps.
        time.sleep(0.5)
        self.assertEqual({r[0] for r in query(path, "SELECT uuid FROM events")},
                         {queued, unreferenced})
        self.assertTrue(wait_until(
            lambda: query(path, "SELECT uuid FROM events") == [(queued,)], 10),
            query(path, "SELECT uuid FROM events"))
        self.assertIn("upgraded", self.server.read_log())

        async def consume():
            c = await Peer.consumer(self.server, "ledger", topic="entry:posted",
                                    join={"ack": True, "partition_count": 1})
            got = await c.receive_events(1)
            await c.ack(got[0])
            await c.close()
            return got[0]

        got = run(consume())
        self.assertEqual(event_uuid(got), queued)
        self.assertEqual(got["payload"]["event"]["payload"], {"old": 1})
        self.assertTrue(wait_until(lambda: query(path, "SELECT count(*) FROM events") == [(0,)],
                                   10))

    def test_newer_schema_version_rejected(self):
        path = os.path.join(self.tmp, "db", "hivent.db")
        os.makedirs(os.path.dirname(path))
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 7")
        db.commit()
        db.close()
        proc = subprocess.run([hvtest.HIVENTD, "--data-dir", os.path.dirname(path),
                               "--listen", "127.0.0.1:0"], capture_output=True, timeout=10)
        stderr = proc.stderr.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 1, stderr)
        self.assertIn("schema version 7", stderr)
        self.assertIn("run a newer hiventd", stderr)

    def test_invalid_retention_rejected(self):
        for value in ("-1", "abc", "1.5", "99999999999999"):
            proc = subprocess.run([hvtest.HIVENTD, "--data-dir", self.tmp, "--retention", value],
                                  capture_output=True, timeout=10)
            stderr = proc.stderr.decode("utf-8", "replace")
            self.assertEqual(proc.returncode, 2, (value, stderr))
            self.assertIn("invalid --retention '%s'" % value, stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
