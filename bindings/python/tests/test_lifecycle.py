"""Closing of clients and consumers: on collection without close(), and how fast close() is."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import urllib.request

import hivent

from conftest import consumer_class, run_until_connected, wait_until


def open_connections(server, kind: str) -> int:
    """Return hiventd's gauge of open WebSocket connections of @kind (producer or consumer)."""
    url = f"http://127.0.0.1:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    prefix = f'hivent_connections{{kind="{kind}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return int(line[len(prefix):])
    raise AssertionError(f"metric line {prefix!r} not found in /metrics")


# hiventd in these tests drops a silent connection after 2 s (two heartbeat
# intervals), so a connection that closes within this time was closed by
# the binding.
CLOSE_WAIT = 1.5


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_dropped_clients_closed(own_hiventd, unique):
    threads_before = threading.active_count()
    fds_before = open_fds()
    for index in range(10):
        client = hivent.Client(own_hiventd.options())
        client.emit(f"drop:{unique}", {"index": index})
        del client
        gc.collect()

    wait_until(lambda: open_connections(own_hiventd, "producer") == 0, timeout=CLOSE_WAIT)
    wait_until(lambda: threading.active_count() <= threads_before, timeout=5)
    assert open_fds() <= fds_before


def test_dropped_consumer_releases_partitions(own_hiventd, unique):
    topic = f"dropc:{unique}"
    cls = consumer_class(topic, f"dropc_{unique}")
    first = cls(own_hiventd.options())
    run_until_connected(first)
    del first
    gc.collect()
    wait_until(lambda: open_connections(own_hiventd, "consumer") == 0, timeout=CLOSE_WAIT)

    second = cls(own_hiventd.options())
    run_until_connected(second)
    with hivent.Client(own_hiventd.options()) as client:
        client.emit(topic, {"n": 1})
    second.run(timeout=10)
    assert [event.payload for event in second.events] == [{"n": 1}]


def test_dropped_consumers_no_leak(own_hiventd, unique):
    fds_before = open_fds()
    cls = consumer_class(f"dropl:{unique}", f"dropl_{unique}")
    for _ in range(5):
        consumer = cls(own_hiventd.options())
        consumer.poll(0.05)
        del consumer
        gc.collect()

    wait_until(lambda: open_connections(own_hiventd, "consumer") == 0, timeout=CLOSE_WAIT)
    assert open_fds() <= fds_before


def test_close_after_emit_prompt(hiventd, unique):
    durations = []
    for index in range(5):
        client = hivent.Client(hiventd.options())
        client.emit(f"prompt:{unique}", {"index": index})
        started = time.monotonic()
        client.close()
        durations.append(time.monotonic() - started)

    assert max(durations) < 0.05, f"close() took {durations} s"


class NestedPoll(hivent.Consumer):
    """Calls poll() from inside process() for the first event and stores what it raised."""

    partition_count = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = []
        self.nested_error = None

    def process(self, event):
        self.order.append(("start", event.payload["k"]))
        if event.payload["k"] == 0:
            try:
                self.poll(0.5)
            except hivent.HiventError as exc:
                self.nested_error = exc
        self.order.append(("end", event.payload["k"]))
        if len(self.order) == 6:
            self.stop()


def test_poll_inside_process_rejected(hiventd, unique):
    cls = type("NestedPoll_x", (NestedPoll,), {"topic": f"nest:{unique}",
                                               "name": f"nest_{unique}"})
    consumer = cls(hiventd.options())
    run_until_connected(consumer)
    with hivent.Client(hiventd.options()) as client:
        for k in range(3):
            client.emit(cls.topic, {"k": k})
    consumer.run(timeout=10)

    assert isinstance(consumer.nested_error, hivent.State)
    assert "poll() called from inside process()" in str(consumer.nested_error)
    expected = [("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    assert consumer.order == expected
    assert consumer.processed == 3


def test_close_inside_process_logged(hiventd, unique, caplog):
    class Closing(hivent.Consumer):
        topic = f"closein:{unique}"
        name = f"closein_{unique}"
        partition_count = 1

        def process(self, event):
            self.close()

    consumer = Closing(hiventd.options())
    run_until_connected(consumer)
    with hivent.Client(hiventd.options()) as client:
        client.emit(Closing.topic, {"k": 1})
    with caplog.at_level(logging.WARNING, logger="hivent"):
        wait_until(lambda: consumer.closed or consumer.poll(0.1) < 0, timeout=10)

    messages = [record.getMessage() for record in caplog.records]
    assert any("closed inside process()" in message for message in messages), messages
    assert not any("invalid argument" in message.lower() for message in messages), messages


def test_failed_default_client_replaced(own_hiventd, unique, caplog):
    hivent.configure(own_hiventd.options(max_reconnect_tries=1, reconnect_backoff_time=50,
                                         reconnect_backoff_max=50))
    hivent.emit(f"dflt:{unique}", {"n": 1}, timeout=10)
    first = hivent.client()
    own_hiventd.stop()
    wait_until(lambda: first.state == "failed", timeout=10)
    own_hiventd.start()

    with caplog.at_level(logging.WARNING, logger="hivent"):
        event = hivent.emit(f"dflt:{unique}", {"n": 2}, timeout=10)

    assert event.payload == {"n": 2}
    assert hivent.client() is not first
    assert first.closed
    messages = [record.getMessage() for record in caplog.records]
    assert any("replaced by a new client" in message for message in messages), messages
