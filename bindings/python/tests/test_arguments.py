"""Arguments that reach the core as C strings or C integers raise the usual
Python errors naming the argument, never SWIG's "in method ..." messages."""

from __future__ import annotations

import math

import pytest

import hivent

from conftest import consumer_class, run_until_connected, wait_until

MEMORY = {"server": {"host": "memory"}}
EMITS = ("emit", "emit_async")


def assert_no_swig_text(error: BaseException) -> None:
    text = str(error)
    assert "in method" not in text
    assert "char const" not in text
    assert "argument " not in text


@pytest.fixture
def client():
    with hivent.Client(MEMORY, env=False) as memory_client:
        yield memory_client


@pytest.mark.parametrize("method", EMITS)
@pytest.mark.parametrize("argument", ["name", "cid", "key"])
def test_lone_surrogate_names_argument(client, method, argument):
    values = {"name": "ok:name", "cid": None, "key": None}
    values[argument] = "a\ud800b"
    emit = getattr(client, method)
    with pytest.raises(UnicodeEncodeError) as info:
        emit(values["name"], {}, cid=values["cid"], key=values["key"])
    assert f"{argument} contains the lone surrogate U+D800" in str(info.value)
    assert info.value.start == 1
    assert_no_swig_text(info.value)


@pytest.mark.parametrize("method", EMITS)
@pytest.mark.parametrize("version", [2**63, -2**63 - 1, 2**100])
def test_version_out_of_range(client, method, version):
    with pytest.raises(OverflowError) as info:
        getattr(client, method)("ok:version", {}, version=version)
    assert "version must fit in a signed 64-bit integer" in str(info.value)
    assert_no_swig_text(info.value)


@pytest.mark.parametrize("method", EMITS)
def test_version_maximum_accepted(client, method):
    result = getattr(client, method)("ok:limits", {}, version=2**63 - 1)
    event = result if method == "emit" else result.result(timeout=10)
    assert event.version == 2**63 - 1


@pytest.mark.parametrize("method", EMITS)
def test_nul_names_argument(client, method):
    for argument in ("name", "cid", "key"):
        values = {"name": "ok:nul", "cid": None, "key": None}
        values[argument] = "a\0b"
        with pytest.raises(ValueError) as info:
            getattr(client, method)(values["name"], {}, cid=values["cid"], key=values["key"])
        assert f"{argument} must not contain NUL characters" in str(info.value)
        assert_no_swig_text(info.value)


@pytest.mark.parametrize("timeout, error", [
    (math.inf, ValueError),
    (math.nan, ValueError),
    ("5", TypeError),
    (True, TypeError),
    (-1, ValueError),
])
def test_emit_timeout_checked(client, timeout, error):
    with pytest.raises(error) as info:
        client.emit("ok:timeout", {}, timeout=timeout)
    assert "timeout" in str(info.value)
    assert_no_swig_text(info.value)


@pytest.mark.parametrize("timeout, error", [
    (math.inf, ValueError),
    (math.nan, ValueError),
    ("5", TypeError),
])
def test_client_waits_check_timeout(timeout, error):
    manual = hivent.Client(MEMORY, env=False, dispatch="manual")
    try:
        for method in (manual.poll, manual.flush, manual.close):
            with pytest.raises(error) as info:
                method(timeout)
            assert "timeout" in str(info.value), method.__name__
        # The rejected close() left the client open.
        assert manual.emit("ok:after", {}).name == "ok:after"
    finally:
        manual.close(0)


def test_huge_timeouts_clamped(client):
    assert client.emit("ok:huge", {}, timeout=2**70).name == "ok:huge"
    assert client.flush(2**70) == 0


def test_option_with_surrogate_names_key():
    with pytest.raises(UnicodeEncodeError) as info:
        hivent.Client(MEMORY, env=False, client_id="a\udc00")
    assert "option client_id contains the lone surrogate U+DC00" in str(info.value)
    with pytest.raises(ValueError) as info:
        hivent.Client(MEMORY, env=False, client_id="a\0b")
    assert "option client_id must not contain NUL" in str(info.value)


@pytest.mark.parametrize("attribute", ["topic", "name"])
def test_consumer_text_attributes(attribute):
    cls = consumer_class("ok:consumer", "svc-args")
    setattr(cls, attribute, "x\udfffy")
    with pytest.raises(UnicodeEncodeError) as info:
        cls(MEMORY, env=False)
    assert f"{cls.__name__}.{attribute} contains the lone surrogate U+DFFF" in str(info.value)
    assert_no_swig_text(info.value)


@pytest.mark.parametrize("count", [4097, 2**31, 2**63])
def test_consumer_partition_count_range(count):
    cls = consumer_class("ok:consumer", "svc-args", partitions=count)
    with pytest.raises(ValueError) as info:
        cls(MEMORY, env=False)
    assert "partition_count must be from 1 to 4096" in str(info.value)
    assert_no_swig_text(info.value)


def test_consumer_waits_check_timeout():
    consumer = consumer_class("ok:consumer", "svc-waits")(MEMORY, env=False)
    try:
        for method in (consumer.poll, consumer.run, consumer.close):
            for timeout, error in ((math.inf, ValueError), (math.nan, ValueError),
                                   ("1", TypeError)):
                with pytest.raises(error) as info:
                    method(timeout)
                assert "timeout" in str(info.value), method.__name__
                assert_no_swig_text(info.value)
        with pytest.raises(ValueError):
            hivent.run(consumer, timeout=math.nan)
        assert not consumer.closed
    finally:
        consumer.close(0)


class BadReason(hivent.Consumer):
    partition_count = 1

    def process(self, event):
        self.stop()
        return ("error", "bad\0reason \ud800")


def test_reject_reason_escaped(hiventd, unique):
    service = f"svc-{unique}"
    cls = type("BadReasonNow", (BadReason,), {"topic": f"args:{unique}", "name": service})
    consumer = cls(hiventd.options(), env=False)
    run_until_connected(consumer)
    with hivent.Client(hiventd.options(), env=False) as producer:
        producer.emit(cls.topic, {"n": 1})
    consumer.run(timeout=10)
    consumer.close()
    assert consumer.failed == 1
    letters = wait_until(lambda: hiventd.dead_letters(service))
    assert letters[0]["reason"] == "bad\\0reason \\ud800"


@pytest.mark.parametrize("topic, message", [
    ("a\0b", "topic must not contain NUL characters"),
    ("", "topic must be 1 to 255 bytes in UTF-8, not 0"),
    ("t" * 300, "topic must be 1 to 255 bytes in UTF-8, not 300"),
    ("\u00e9" * 128, "topic must be 1 to 255 bytes in UTF-8, not 256"),
], ids=["nul", "empty", "300 bytes", "256 bytes"])
def test_consumer_bad_topic_value_error(topic, message):
    cls = consumer_class(topic, "svc-args")
    with pytest.raises(ValueError) as info:
        cls(MEMORY, env=False)
    assert type(info.value) is ValueError
    assert message in str(info.value)


def test_consumer_service_colon_value_error():
    cls = consumer_class("ok:consumer", "svc:args")
    with pytest.raises(ValueError) as info:
        cls(MEMORY, env=False)
    assert "name must not contain ':'" in str(info.value)


@pytest.mark.parametrize("count", [0, -1])
def test_consumer_partition_count_zero(count):
    cls = consumer_class("ok:consumer", "svc-args", partitions=count)
    with pytest.raises(ValueError) as info:
        cls(MEMORY, env=False)
    assert "partition_count must be from 1 to 4096" in str(info.value)


def test_memory_dir_public_only():
    assert dir(hivent.memory) == sorted(hivent.memory.__all__)
