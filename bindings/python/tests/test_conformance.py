"""Conformance cases shared by every binding: configuration errors, emit sync
and async, consume, dead-letter, reconnect after hiventd restarts, memory
transport.  Everything except the configuration and memory cases runs
against a real hiventd on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
import time
import zlib

import pytest

import hivent

from conftest import consumer_class, run_until_connected, wait_until


# ---- configuration errors ----


def test_config_unknown_key_raises():
    with pytest.raises(hivent.UnknownKey) as info:
        hivent.Client(no_such_option=1, env=False)
    assert "no_such_option" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_config_invalid_value_names_key():
    with pytest.raises(hivent.InvalidValue) as info:
        hivent.Client(max_reconnect_tries="many", env=False)
    assert "max_reconnect_tries" in str(info.value)


def test_config_invalid_nested_value_names_key():
    with pytest.raises(hivent.InvalidValue) as info:
        hivent.Client(server={"port": 70000}, env=False)
    assert "server.port" in str(info.value)


def test_config_unsupported_value_type_raises():
    with pytest.raises(TypeError, match="reconnect_backoff_time"):
        hivent.Client(reconnect_backoff_time=[1], env=False)


def test_configure_validates_at_once():
    with pytest.raises(hivent.InvalidValue):
        hivent.configure(server={"secure": "maybe"})


def test_config_from_environment(monkeypatch):
    monkeypatch.setenv("HIVENT_SERVER_HOST", "memory")
    monkeypatch.setenv("HIVENT_CLIENT_ID", "from-env")
    hivent.memory.clear()
    hivent.configure()
    event = hivent.emit("conf:env", {"x": 1})
    assert event.producer == "from-env"
    assert hivent.memory.includes("conf:env")


def test_config_keywords_override_environment(monkeypatch):
    monkeypatch.setenv("HIVENT_SERVER_HOST", "memory")
    monkeypatch.setenv("HIVENT_CLIENT_ID", "from-env")
    with hivent.Client({"client_id": "from-dict"}, dispatch="manual") as client:
        assert client.emit("conf:dict", {}).producer == "from-dict"
    with hivent.Client({"client_id": "from-dict"}, client_id="from-kw") as client:
        assert client.emit("conf:kw", {}).producer == "from-kw"


def test_config_invalid_environment_value_raises(monkeypatch):
    monkeypatch.setenv("HIVENT_MAX_RECONNECT_TRIES", "lots")
    with pytest.raises(hivent.InvalidValue, match="max_reconnect_tries"):
        hivent.Client()
    # env=False ignores the environment.
    hivent.Client(env=False, server={"host": "memory"}).close()


def test_config_reference_option_names_accepted():
    options = dict(
        client_id="svc", max_reconnect_tries=5, reconnect_backoff_time=250,
        server={"host": "memory", "port": 4001, "secure": False, "api_key": "k"},
    )
    hivent.Client(options, env=False).close()


def test_consumer_uses_configure_options(hiventd, unique):
    # The README's order: configure() once, then a consumer without options.
    # hiventd runs with an API key, so the consumer connects only with the
    # configured port and key.
    hivent.configure(hiventd.options(client_id="py-configured"), env=False)
    topic = f"configured:{unique}"
    consumer = consumer_class(topic, f"svc-{unique}")()
    run_until_connected(consumer)
    hivent.emit(topic, {"via": "configure"})
    consumer.run(timeout=10)
    assert [event.payload for event in consumer.events] == [{"via": "configure"}]
    assert consumer.events[0].producer == "py-configured"


def test_consumer_options_win_over_configure(hiventd, unique):
    options = hiventd.options()
    options["server"]["api_key"] = "wrong-key"
    hivent.configure(options, env=False)
    # Only the key is given here; host and port still come from configure().
    consumer = consumer_class(f"own:{unique}", f"svc-{unique}")(
        server={"api_key": hiventd.options()["server"]["api_key"]})
    run_until_connected(consumer)
    consumer.close()


def test_consumer_none_option_keeps_configured_value(hiventd, unique):
    hivent.configure(hiventd.options(), env=False)
    consumer = consumer_class(f"none:{unique}", f"svc-{unique}")(server={"port": None})
    run_until_connected(consumer)
    consumer.close()


def test_client_uses_configure_options(hiventd, unique):
    # hiventd runs with an API key, so the client connects only with the
    # configured port and key.
    hivent.configure(hiventd.options(client_id="py-configured-client"), env=False)
    with hivent.Client() as client:
        event = client.emit(f"configured:{unique}", {"n": 1}, timeout=10)
    assert event.producer == "py-configured-client"


def test_client_options_win_over_configure(hiventd, unique):
    hivent.configure(hiventd.options(client_id="py-configured-client"), env=False)
    with hivent.Client({"client_id": "py-from-dict"}) as client:
        assert client.emit(f"dict:{unique}", {}, timeout=10).producer == "py-from-dict"
    with hivent.Client({"client_id": "py-from-dict"}, client_id="py-from-kw") as client:
        assert client.emit(f"kw:{unique}", {}, timeout=10).producer == "py-from-kw"
    with hivent.Client(client_id=None) as client:
        assert client.emit(f"none:{unique}", {}, timeout=10).producer == "py-configured-client"


def test_client_configure_wins_over_environment(hiventd, unique, monkeypatch):
    monkeypatch.setenv("HIVENT_CLIENT_ID", "py-from-env")
    hivent.configure(hiventd.options(client_id="py-configured-client"))
    with hivent.Client() as client:
        assert client.emit(f"env:{unique}", {}, timeout=10).producer == "py-configured-client"
    # An option that configure() leaves unset still comes from the environment.
    monkeypatch.setenv("HIVENT_REQUEST_TIMEOUT", "soon")
    with pytest.raises(hivent.InvalidValue, match="request_timeout"):
        hivent.Client()


def test_client_env_follows_configure(monkeypatch):
    monkeypatch.setenv("HIVENT_CLIENT_ID", "py-from-env")
    hivent.configure(server={"host": "memory"}, env=False)
    with hivent.Client(dispatch="manual") as ignoring:
        assert ignoring.emit("env:client", {}).producer != "py-from-env"
    with hivent.Client(env=True, dispatch="manual") as reading:
        assert reading.emit("env:client", {}).producer == "py-from-env"


def test_consumer_uses_configured_memory_transport():
    hivent.memory.clear()
    hivent.configure(server={"host": "memory"}, env=False)
    consumer = consumer_class("mem:configured", "mem-configured-svc")()
    consumer.start()
    hivent.emit("mem:configured", {"n": 1})
    consumer.run(timeout=5)
    assert [event.payload for event in consumer.events] == [{"n": 1}]


def test_consumer_env_follows_configure(monkeypatch):
    # configure(env=False) makes consumers ignore HIVENT_* variables too,
    # unless a consumer passes env itself.
    monkeypatch.setenv("HIVENT_CONSUMER_VERSION", "5")
    hivent.configure(server={"host": "memory"}, env=False)
    ignoring = consumer_class("env:configured", "env-ignoring-svc")(expected=2)
    reading = consumer_class("env:configured", "env-reading-svc")(env=True)
    ignoring.start()
    reading.start()
    hivent.emit("env:configured", {"v": 1}, version=1)
    hivent.emit("env:configured", {"v": 5}, version=5)
    hivent.run(ignoring, reading, timeout=2)
    assert [event.payload for event in ignoring.events] == [{"v": 1}, {"v": 5}]
    assert [event.payload for event in reading.events] == [{"v": 5}]


# ---- emit ----


def test_emit_sync_returns_published_event(hiventd, unique):
    with hivent.Client(hiventd.options(client_id="py-sync"), env=False) as client:
        event = client.emit(f"sync:{unique}", {"n": 1, "s": "é"}, version=3, cid="c-1", key="k-1")
    assert event.name == f"sync:{unique}"
    assert event.payload == {"n": 1, "s": "é"}
    assert event.meta["version"] == 3
    assert event.meta["cid"] == "c-1"
    assert event.meta["key"] == "k-1"
    assert event.meta["producer"] == "py-sync"
    assert len(event.meta["uuid"]) == 36
    assert event.meta["created_at"].endswith("Z")


def test_emit_sync_fills_cid(hiventd, unique):
    with hivent.Client(hiventd.options(), env=False) as client:
        event = client.emit(f"sync:{unique}", {})
    assert event.cid


def test_emit_module_level_uses_default_client(hiventd, unique):
    hivent.configure(hiventd.options(client_id="py-default"), env=False)
    event = hivent.emit(f"default:{unique}", {"a": 1}, version=1)
    assert event.producer == "py-default"


def test_emit_invalid_version_raises(hiventd, unique):
    with hivent.Client(hiventd.options(), env=False) as client:
        with pytest.raises(hivent.HiventError):
            client.emit(f"bad:{unique}", {}, version=0)
        with pytest.raises(TypeError):
            client.emit(f"bad:{unique}", {}, version="1")


def test_emit_invalid_name_raises(hiventd):
    with hivent.Client(hiventd.options(), env=False) as client:
        with pytest.raises(hivent.InvalidArg):
            client.emit("", {})
        with pytest.raises(ValueError, match="NUL"):
            client.emit("a\0b", {})


def test_emit_async_future(hiventd, unique):
    with hivent.Client(hiventd.options(), env=False) as client:
        futures = [client.emit_async(f"async:{unique}", {"i": i}, key=str(i)) for i in range(50)]
        events = [future.result(timeout=10) for future in futures]
    assert [event.payload["i"] for event in events] == list(range(50))
    assert len({event.uuid for event in events}) == 50


def test_flush_waits_for_callbacks(hiventd, unique):
    results = []
    threads = set()
    with hivent.Client(hiventd.options(), env=False) as client:
        for i in range(20):
            client.emit_async(f"async:{unique}", {"i": i},
                              callback=lambda err, ev: (results.append((err, ev)),
                                                        threads.add(threading.get_ident())))
        assert client.flush(10) == 0
        assert len(results) == 20
    assert all(err is None for err, _ in results)
    assert sorted(ev.payload["i"] for _, ev in results) == list(range(20))
    assert threading.get_ident() not in threads


def test_manual_dispatch_in_flush(hiventd, unique):
    threads = []
    with hivent.Client(hiventd.options(), env=False, dispatch="manual") as client:
        future = client.emit_async(f"manual:{unique}", {},
                                   callback=lambda err, ev: threads.append(threading.get_ident()))
        assert client.flush(10) == 0
        assert future.done()
    assert threads == [threading.get_ident()]


def test_results_after_an_interrupted_callback_are_kept(hiventd, unique):
    # Results are taken from the core in batches; an exception that stops a
    # manual poll in the middle of one must not drop the rest of it.
    seen = []

    def callback(err, event):
        seen.append(event.payload["i"])
        if len(seen) == 1:
            raise KeyboardInterrupt

    with hivent.Client(hiventd.options(), env=False, dispatch="manual") as client:
        futures = [client.emit_async(f"interrupt:{unique}", {"i": i}, callback=callback)
                   for i in range(5)]
        deadline = time.monotonic() + 10
        while client.outstanding > 0 and time.monotonic() < deadline:
            try:
                client.poll(0.05)
            except KeyboardInterrupt:
                pass
        assert client.flush(10) == 0
    assert sorted(seen) == list(range(5))
    assert [f.result(timeout=0).payload["i"] for f in futures] == list(range(5))


def test_callback_may_emit_and_flush(hiventd, unique):
    nested = []

    def chain(err, event):
        # Runs on the dispatcher thread: emitting and flushing here must not
        # wait for that same thread.
        nested.append(client.emit_async(f"chain:{unique}", {"step": 2}))
        nested.append(client.flush(10))

    with hivent.Client(hiventd.options(), env=False) as client:
        client.emit_async(f"chain:{unique}", {"step": 1}, callback=chain)
        assert client.flush(15) == 0
    assert nested[1] == 0
    assert nested[0].result(timeout=1).payload == {"step": 2}


def test_sync_emit_inside_callback(hiventd, unique):
    # The dispatcher thread runs the callback, so emit() there dispatches
    # its own result instead of waiting for that thread.
    results = []

    def chain(err, event):
        results.append(client.emit(f"chain-sync:{unique}", {"step": 2}, timeout=10))

    with hivent.Client(hiventd.options(), env=False) as client:
        started = time.monotonic()
        client.emit_async(f"chain-sync:{unique}", {"step": 1}, callback=chain)
        assert client.flush(15) == 0
    assert time.monotonic() - started < 5
    assert [event.payload for event in results] == [{"step": 2}]


def test_emit_async_callback_exception_is_logged(hiventd, unique, caplog):
    def broken(err, event):
        raise RuntimeError("callback broke")

    with caplog.at_level(logging.ERROR, logger="hivent"):
        with hivent.Client(hiventd.options(), env=False) as client:
            first = client.emit_async(f"cb:{unique}", {}, callback=broken)
            assert client.flush(10) == 0
            second = client.emit_async(f"cb:{unique}", {"after": True})
            assert second.result(timeout=10).payload == {"after": True}
    assert first.result().name == f"cb:{unique}"
    records = [r for r in caplog.records if "delivery callback" in r.getMessage()]
    assert records
    assert records[0].exc_info is not None
    assert "callback broke" in caplog.text


def test_emit_async_module_level_and_flush(hiventd, unique):
    hivent.configure(hiventd.options(), env=False)
    future = hivent.emit_async(f"module:{unique}", {"x": 1})
    assert hivent.flush(10) == 0
    assert future.result().payload == {"x": 1}


def test_emit_async_fails_when_server_unreachable(own_hiventd, unique):
    port = own_hiventd.port
    own_hiventd.stop()
    # Two refused attempts 300 ms apart: the emit is queued long before the
    # client gives up, so its future fails instead of emit_async() raising.
    options = {"server": {"host": "127.0.0.1", "port": port}, "max_reconnect_tries": 1,
               "reconnect_backoff_time": 300, "reconnect_jitter": 0}
    errors = []
    with hivent.Client(options, env=False) as client:
        future = client.emit_async(f"down:{unique}", {}, callback=lambda e, ev: errors.append(e))
        with pytest.raises(hivent.Failed):
            future.result(timeout=15)
        assert client.flush(5) == 0
        assert isinstance(errors[0], hivent.Failed)
        # Once failed, the client rejects new emits at once.
        wait_until(lambda: client.state == "failed")
        with pytest.raises(hivent.Failed):
            client.emit_async(f"down:{unique}", {})
        with pytest.raises(hivent.Failed):
            client.emit(f"down:{unique}", {})


def _buffering_client(own_hiventd, dispatch="thread", **extra):
    """Return a client of a stopped hiventd, which keeps its emits buffered."""
    port = own_hiventd.port
    own_hiventd.stop()
    options = {"server": {"host": "127.0.0.1", "port": port}, "max_reconnect_tries": -1,
               "reconnect_backoff_time": 100, "reconnect_backoff_max": 200}
    options.update(extra)
    return hivent.Client(options, env=False, dispatch=dispatch)


def test_close_zero_timeout_returns_at_once(own_hiventd, unique):
    client = _buffering_client(own_hiventd, flush_timeout=3000)
    results = []
    futures = [client.emit_async(f"close:{unique}", {"i": i},
                                 callback=lambda error, event: results.append(error))
               for i in range(3)]
    started = time.monotonic()
    client.close(timeout=0)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"close(timeout=0) took {elapsed:.2f} s"
    assert client.closed
    assert len(results) == 3
    for error in results:
        assert isinstance(error, hivent.Destroyed)
    for future in futures:
        assert isinstance(future.exception(timeout=0), hivent.Destroyed)


def test_close_zero_timeout_manual_dispatch(own_hiventd, unique):
    client = _buffering_client(own_hiventd, dispatch="manual", flush_timeout=3000)
    errors = []
    client.emit_async(f"close:{unique}", {}, callback=lambda error, event: errors.append(error))
    started = time.monotonic()
    client.close(0)
    assert time.monotonic() - started < 1.0
    assert len(errors) == 1
    assert isinstance(errors[0], hivent.Destroyed)


def test_close_default_waits_flush_timeout(own_hiventd, unique):
    hivent.configure(flush_timeout=600, env=False)
    client = _buffering_client(own_hiventd)
    future = client.emit_async(f"close:{unique}", {})
    started = time.monotonic()
    client.close()
    elapsed = time.monotonic() - started
    # One flush_timeout (600 ms) from configure(), not the 5 s default and
    # not twice.
    assert 0.5 <= elapsed < 1.1, f"close() took {elapsed:.2f} s"
    assert isinstance(future.exception(timeout=0), hivent.Destroyed)


def test_emit_sync_wrong_api_key_fails(hiventd, unique):
    options = hiventd.options(max_reconnect_tries=0, request_timeout=2000)
    options["server"]["api_key"] = "wrong"
    with hivent.Client(options, env=False) as client:
        with pytest.raises(hivent.HiventError):
            client.emit(f"auth:{unique}", {}, timeout=5)


# ---- consume ----


def test_consume_receives_equal_payload_and_meta(hiventd, unique):
    topic = f"consume:{unique}"
    consumer = consumer_class(topic, f"svc-{unique}")(hiventd.options(), env=False)
    run_until_connected(consumer)
    payload = {"int": 2**64 - 1, "neg": -(2**63), "f": 0.5, "b": b"\x00\x01", "n": None,
               "t": True, "l": [1, [2]], "d": {"é": "ü"}}
    with hivent.Client(hiventd.options(client_id="py-producer"), env=False) as client:
        published = client.emit(topic, payload, version=2, cid="cid-1", key="user-7")
    consumer.run(timeout=10)
    assert consumer.closed
    assert len(consumer.events) == 1
    received = consumer.events[0]
    assert received.name == topic
    assert received.payload == payload
    assert received.meta == published.meta
    assert received.queue == f"svc-{unique}:0"
    assert received.partition == 0


def test_consume_partition_follows_key_crc32(hiventd, unique):
    topic = f"part:{unique}"
    consumer = consumer_class(topic, f"svc-{unique}", partitions=4)(
        hiventd.options(), env=False, expected=12)
    run_until_connected(consumer)
    keys = [f"key-{i}" for i in range(12)]
    with hivent.Client(hiventd.options(), env=False) as client:
        for key in keys:
            client.emit_async(topic, {"key": key}, key=key)
        assert client.flush(10) == 0
    consumer.run(timeout=15)
    assert len(consumer.events) == 12
    for event in consumer.events:
        expected = zlib.crc32(event.key.encode()) % 4
        assert event.partition == expected, event.key
        assert event.queue == f"svc-{unique}:{expected}"


def test_consume_order_within_partition(hiventd, unique):
    topic = f"order:{unique}"
    consumer = consumer_class(topic, f"svc-{unique}", partitions=2)(
        hiventd.options(), env=False, expected=40)
    run_until_connected(consumer)
    with hivent.Client(hiventd.options(), env=False) as client:
        for i in range(40):
            client.emit_async(topic, {"i": i}, key="same-key")
        assert client.flush(10) == 0
    consumer.run(timeout=15)
    assert [event.payload["i"] for event in consumer.events] == list(range(40))


def test_consume_version_filter(hiventd, unique):
    topic = f"version:{unique}"
    cls = consumer_class(topic, f"svc-{unique}", version=2)
    consumer = cls(hiventd.options(), env=False)
    run_until_connected(consumer)
    with hivent.Client(hiventd.options(), env=False) as client:
        client.emit(topic, {"v": 1}, version=1)
        client.emit(topic, {"v": 2}, version=2)
    consumer.run(timeout=10)
    assert [event.payload for event in consumer.events] == [{"v": 2}]


def test_two_consumers_run_in_one_thread(hiventd, unique):
    first = consumer_class(f"a:{unique}", f"svc-a-{unique}")(hiventd.options(), env=False)
    second = consumer_class(f"b:{unique}", f"svc-b-{unique}")(hiventd.options(), env=False)
    run_until_connected(first)
    run_until_connected(second)
    with hivent.Client(hiventd.options(), env=False) as client:
        client.emit(f"a:{unique}", {"to": "a"})
        client.emit(f"b:{unique}", {"to": "b"})
    hivent.run(first, second, timeout=15)
    assert [event.payload for event in first.events] == [{"to": "a"}]
    assert [event.payload for event in second.events] == [{"to": "b"}]
    assert first.closed and second.closed


def test_two_consumers_run_in_threads(hiventd, unique):
    consumers = [consumer_class(f"t{i}:{unique}", f"svc-t{i}-{unique}")(hiventd.options(),
                                                                        env=False)
                 for i in range(2)]
    for consumer in consumers:
        run_until_connected(consumer)
    threads = [threading.Thread(target=c.run, kwargs={"timeout": 15}) for c in consumers]
    for thread in threads:
        thread.start()
    with hivent.Client(hiventd.options(), env=False) as client:
        for i in range(2):
            client.emit(f"t{i}:{unique}", {"i": i})
    for thread in threads:
        thread.join(20)
    assert [c.events[0].payload for c in consumers] == [{"i": 0}, {"i": 1}]


def test_stop_from_another_thread_returns_quickly(hiventd, unique):
    consumer = consumer_class(f"idle:{unique}", f"svc-{unique}")(hiventd.options(), env=False)
    consumer.start()
    timer = threading.Timer(0.3, consumer.stop)
    started = time.monotonic()
    timer.start()
    consumer.run()
    assert time.monotonic() - started < 1.5
    assert consumer.closed


# ---- dead-letter ----


class Failing(hivent.Consumer):
    topic = "*"
    name = "failing"
    partition_count = 1

    def __init__(self, *args, mode="raise", expected=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.mode = mode
        self.expected = expected
        self.seen = []
        self.failures = []

    def process(self, event):
        self.seen.append(event)
        if len(self.seen) >= self.expected:
            self.stop()
        if event.payload.get("ok"):
            return None
        if self.mode == "raise":
            raise KeyError("missing field")
        if self.mode == "false":
            return False
        if self.mode == "exception":
            return ValueError("bad value")
        return ("error", "rejected by test")

    def event_processing_failed(self, event, reason):
        self.failures.append(reason)


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("raise", "KeyError: 'missing field'"),
        ("false", "process() returned False"),
        ("exception", "ValueError: bad value"),
        ("tuple", "rejected by test"),
    ],
)
def test_dead_letter_on_failure(hiventd, unique, caplog, mode, reason):
    topic = f"dlq:{unique}"
    service = f"svc-{unique}"
    cls = type("FailingNow", (Failing,), {"topic": topic, "name": service})
    consumer = cls(hiventd.options(), env=False, mode=mode, expected=2)
    run_until_connected(consumer)
    with hivent.Client(hiventd.options(), env=False) as client:
        bad = client.emit(topic, {"ok": False, "n": 1})
        client.emit(topic, {"ok": True, "n": 2})
    with caplog.at_level(logging.WARNING, logger="hivent"):
        consumer.run(timeout=10)
    # The failure did not stop the loop: the next event was processed.
    assert [event.payload["n"] for event in consumer.seen] == [1, 2]
    assert consumer.failed == 1
    assert consumer.processed == 1
    assert consumer.failures == [reason]
    if mode == "raise":
        records = [r for r in caplog.records if "process() raised" in r.getMessage()]
        assert records and records[0].exc_info is not None
        assert "Traceback" in caplog.text
    letters = wait_until(lambda: hiventd.dead_letters(service))
    assert len(letters) == 1
    assert letters[0]["queue"] == f"{service}:0:dead_letter"
    assert letters[0]["reason"] == reason
    assert letters[0]["event"]["meta"]["uuid"] == bad.uuid
    assert letters[0]["event"]["payload"] == {"ok": False, "n": 1}


def test_dead_letter_replay_redelivers(hiventd, unique):
    topic = f"replay:{unique}"
    service = f"svc-{unique}"
    cls = type("FailingOnce", (Failing,), {"topic": topic, "name": service})
    consumer = cls(hiventd.options(), env=False, mode="raise")
    run_until_connected(consumer)
    with hivent.Client(hiventd.options(), env=False) as client:
        client.emit(topic, {"ok": False})
    consumer.run(timeout=10)
    wait_until(lambda: hiventd.dead_letters(service))
    assert hiventd.admin("POST", f"/admin/dlq/replay?service={service}")["replayed"] == 1
    second = consumer_class(topic, service)(hiventd.options(), env=False)
    second.run(timeout=10)
    assert [event.payload for event in second.events] == [{"ok": False}]


# ---- reconnect ----


class UntilPayloads(hivent.Consumer):
    """Stores events until every payload "n" in ``wanted`` arrived (redeliveries included)."""

    topic = "*"
    name = "until"
    partition_count = 1

    def __init__(self, *args, wanted=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.wanted = set(wanted)
        self.events = []

    def process(self, event):
        self.events.append(event)
        if self.wanted <= {e.payload["n"] for e in self.events}:
            self.stop()


def test_reconnect_after_hiventd_restart(own_hiventd, unique):
    topic = f"restart:{unique}"
    states = []
    options = own_hiventd.options()
    cls = type("Restart", (UntilPayloads,), {"topic": topic, "name": f"svc-{unique}"})
    consumer = cls(options, env=False, wanted={1, 2})
    run_until_connected(consumer)
    with hivent.Client(options, env=False, on_state=lambda s, a, n: states.append(s)) as client:
        first = client.emit(topic, {"n": 1})
        consumer.poll(1)
        own_hiventd.restart()
        # The client reconnects by itself and the emit waits for it.
        second = client.emit(topic, {"n": 2}, timeout=20)
        assert second.payload == {"n": 2}
        wait_until(lambda: client.state == "connected")
    consumer.run(timeout=20)
    # Acknowledgements give at-least-once delivery: event 1 comes again
    # when its ack was not stored before the restart, never out of order.
    uuids = [event.uuid for event in consumer.events]
    assert uuids[-1] == second.uuid
    assert set(uuids) == {first.uuid, second.uuid}
    assert uuids.index(first.uuid) < uuids.index(second.uuid)
    assert "backoff" in states or "connecting" in states


def test_emit_async_buffered_while_hiventd_down(own_hiventd, unique):
    options = own_hiventd.options()
    with hivent.Client(options, env=False) as client:
        client.emit(f"buffer:{unique}", {"warmup": True})
        own_hiventd.stop()
        futures = [client.emit_async(f"buffer:{unique}", {"i": i}) for i in range(5)]
        time.sleep(0.3)
        own_hiventd.start()
        assert client.flush(20) == 0
        assert [f.result().payload["i"] for f in futures] == list(range(5))


# ---- failed state ----


def test_run_raises_failed_after_reconnects(own_hiventd, unique):
    options = own_hiventd.options(max_reconnect_tries=1, reconnect_backoff_time=50)
    own_hiventd.stop()
    consumer = consumer_class(f"down:{unique}", f"svc-{unique}")(options, env=False)
    started = time.monotonic()
    # The timeout bounds the test; the failure must end run() long before.
    with pytest.raises(hivent.Failed) as info:
        consumer.run(timeout=20)
    assert time.monotonic() - started < 10
    assert info.value.code == hivent.capi.HIVENT_ERR_FAILED
    assert info.value.symbol == "HIVENT_ERR_FAILED"
    assert "last error" in str(info.value)
    assert "refused" in str(info.value)
    assert consumer.failure is info.value
    assert consumer.closed


def test_run_raises_failed_when_join_rejected(hiventd, unique):
    service = f"svc-{unique}"
    # The first join creates the service with 4 partitions.
    first = consumer_class(f"join:{unique}", service, partitions=4)(hiventd.options(), env=False)
    run_until_connected(first)
    first.close()
    options = hiventd.options(max_reconnect_tries=2, reconnect_backoff_time=50)
    rejected = consumer_class(f"join:{unique}", service, partitions=7)(options, env=False)
    with pytest.raises(hivent.Failed) as info:
        rejected.run(timeout=20)
    assert "partition_count 7 does not match partition_count 4" in str(info.value)
    assert rejected.closed


def test_rejected_join_logged_once(hiventd, unique, caplog):
    service = f"svc-{unique}"
    topic = f"join:{unique}"
    first = consumer_class(topic, service, partitions=4)(hiventd.options(), env=False)
    run_until_connected(first)
    first.close()
    options = hiventd.options(max_reconnect_tries=0, reconnect_backoff_time=50)
    rejected = consumer_class(topic, service, partitions=7)(options, env=False)
    with caplog.at_level(logging.ERROR, logger="hivent"):
        with pytest.raises(hivent.Failed):
            rejected.run(timeout=20)
    messages = [record.getMessage() for record in caplog.records
                if record.levelno >= logging.ERROR]
    join_lines = [m for m in messages
                  if f"join of event:{topic} rejected" in m and "giving up" not in m]
    give_up_lines = [m for m in messages if "giving up" in m]
    assert len(join_lines) == 1, messages
    assert len(give_up_lines) == 1, messages


def test_module_run_raises_failed(own_hiventd, unique):
    healthy = consumer_class("mem:healthy", "mem-healthy-svc")(server={"host": "memory"},
                                                                env=False)
    options = own_hiventd.options(max_reconnect_tries=1, reconnect_backoff_time=50)
    own_hiventd.stop()
    failing = consumer_class(f"down:{unique}", f"svc-{unique}")(options, env=False)
    with pytest.raises(hivent.Failed, match="last error"):
        hivent.run(healthy, failing, timeout=20)
    assert healthy.closed
    assert failing.closed
    assert healthy.failure is None


def test_failed_error_reaches_on_error_before_run_raises(own_hiventd, unique):
    errors = []
    options = own_hiventd.options(max_reconnect_tries=0)
    own_hiventd.stop()
    consumer = consumer_class(f"down:{unique}", f"svc-{unique}")(
        options, env=False, on_error=errors.append)
    with pytest.raises(hivent.Failed):
        consumer.run(timeout=20)
    assert [error.symbol for error in errors] == ["HIVENT_ERR_FAILED"]


# ---- memory transport ----


def test_memory_transport_records_emits():
    hivent.memory.clear()
    assert hivent.memory.is_empty()
    hivent.configure(server={"host": "memory"}, client_id="mem", env=False)
    first = hivent.emit("mem:one", {"a": 1, "nested": {"b": [1, 2]}}, version=2, key="k")
    hivent.emit("mem:two", {"a": 2})
    assert hivent.memory.count() == 2
    assert [event.name for event in hivent.memory.all()] == ["mem:one", "mem:two"]
    assert hivent.memory.all()[0] == first
    assert hivent.memory.last().payload == {"a": 2}
    assert hivent.memory.includes("mem:one")
    assert hivent.memory.includes("mem:one", {"a": 1})
    assert hivent.memory.includes("mem:one", {"a": 1}, {"version": 2, "key": "k"})
    assert hivent.memory.includes(None, {"a": 2})
    assert not hivent.memory.includes("mem:one", {"a": 2})
    assert not hivent.memory.includes("mem:one", None, {"version": 1})
    assert not hivent.memory.includes("mem:three")
    hivent.memory.clear()
    assert hivent.memory.is_empty()
    assert hivent.memory.last() is None
    assert hivent.memory.all() == []


def test_memory_transport_async_and_consumer():
    hivent.memory.clear()
    cls = consumer_class("mem:consumed", "mem-svc", partitions=3)
    consumer = cls(server={"host": "memory"}, env=False, expected=3)
    consumer.start()
    with hivent.Client(server={"host": "memory"}, env=False) as client:
        futures = [client.emit_async("mem:consumed", {"i": i}, key=f"k{i}") for i in range(3)]
        assert client.flush(5) == 0
    assert [f.result().payload["i"] for f in futures] == [0, 1, 2]
    consumer.run(timeout=5)
    assert sorted(event.payload["i"] for event in consumer.events) == [0, 1, 2]
    for event in consumer.events:
        assert event.partition == zlib.crc32(event.key.encode()) % 3


def test_memory_includes_rejects_unconvertible_subset():
    with pytest.raises(TypeError, match=r'payload\["x"\]'):
        hivent.memory.includes("any", {"x": object()})
