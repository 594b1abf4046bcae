"""Payload conversion between Python objects and MessagePack."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest

import hivent
from hivent import capi

from conftest import webhook_payloads

ROUND_TRIP_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    127,
    128,
    -32,
    -33,
    255,
    256,
    65535,
    65536,
    2**31 - 1,
    -(2**31),
    2**32,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    0.0,
    -0.0,
    1.5,
    -2.25e300,
    float("inf"),
    float("-inf"),
    5e-324,
    "",
    "plain",
    "ünïcødé ✓ 𝄞",
    "a" * 40,
    "b" * 300,
    "c" * 70000,
    b"",
    b"\x00\xff binary",
    bytes(range(256)) * 300,
    [],
    [1, "two", 3.0, None, [True, [False]]],
    list(range(20)),
    {},
    {"nested": {"deeper": {"deepest": [1, {"x": None}]}}},
    {str(i): i for i in range(20)},
    {"": "empty key", "ключ": "non-ASCII key", "𝄞": "astral key"},
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=lambda v: type(v).__name__)
def test_round_trip_every_type(value):
    assert hivent.unpack(hivent.pack(value)) == value


def test_round_trip_keeps_types():
    value = {"t": True, "one": 1, "f": 1.0, "s": "1", "b": b"1", "n": None}
    result = hivent.unpack(hivent.pack(value))
    for key, original in value.items():
        assert type(result[key]) is type(original), key


def test_nan_round_trip():
    assert math.isnan(hivent.unpack(hivent.pack(float("nan"))))


def test_tuple_becomes_list():
    assert hivent.unpack(hivent.pack((1, (2, 3)))) == [1, [2, 3]]


def test_bytearray_and_memoryview_become_bytes():
    assert hivent.unpack(hivent.pack(bytearray(b"ab"))) == b"ab"
    assert hivent.unpack(hivent.pack(memoryview(b"cd"))) == b"cd"


def test_int_and_str_subclasses_pack_as_base_types():
    class Number(int):
        pass

    class Text(str):
        pass

    assert hivent.unpack(hivent.pack({"n": Number(5), "t": Text("x")})) == {"n": 5, "t": "x"}


def test_ext_type_round_trip():
    value = {"ext": hivent.ExtType(5, b"\x01\x02\x03"), "fixext": hivent.ExtType(-1, b"12345678")}
    assert hivent.unpack(hivent.pack(value)) == value


def test_integer_encodings_are_compact():
    assert hivent.pack(1) == b"\x01"
    assert hivent.pack(-1) == b"\xff"
    assert hivent.pack(2**64 - 1) == b"\xcf" + b"\xff" * 8
    assert hivent.pack(-(2**63)) == b"\xd3\x80" + b"\x00" * 7


def test_float_packs_as_float64():
    assert hivent.pack(1.5) == b"\xcb" + struct.pack(">d", 1.5)


@pytest.mark.parametrize(
    "value, path",
    [
        ({"a": [1, 2, object()]}, 'value["a"][2]'),
        ({"a": {"b": {1, 2}}}, 'value["a"]["b"]'),
        ([{"x": complex(1, 2)}], 'value[0]["x"]'),
        ({"5": [None, lambda: 0]}, 'value["5"][1]'),
    ],
)
def test_unconvertible_value_names_path(value, path):
    with pytest.raises(TypeError) as info:
        hivent.pack(value)
    assert str(info.value).startswith(path + ":")


def test_unconvertible_key_raises_type_error():
    with pytest.raises(TypeError) as info:
        hivent.pack({"a": {(1, 2): "tuple key"}})
    assert 'value["a"][(1, 2)]' in str(info.value)


@pytest.mark.parametrize(
    "key, path",
    [
        (1, "payload[1]"),
        (-5, "payload[-5]"),
        (2.5, "payload[2.5]"),
        (None, "payload[None]"),
        (True, "payload[True]"),
        (b"raw", "payload[b'raw']"),
    ],
)
def test_non_str_key_rejected_with_path(key, path):
    client = hivent.Client(server={"host": "memory"}, env=False, dispatch="manual")
    try:
        with pytest.raises(TypeError) as info:
            client.emit("payload:key", {key: "value"})
    finally:
        client.close()
    message = str(info.value)
    assert message.startswith(path + ": dict key must be str, not " + type(key).__name__)


def test_nested_non_str_key_rejected_with_path():
    with pytest.raises(TypeError) as info:
        hivent.pack({"order": {"items": [{"sku": 1, 7: "qty"}]}})
    assert str(info.value).startswith('value["order"]["items"][0][7]: dict key must be str')


def test_non_str_key_rejected_in_memory_subset():
    with pytest.raises(TypeError, match=r"meta\[1\]: dict key must be str"):
        hivent.memory.includes("any", None, {1: "x"})


def test_non_str_map_keys_still_unpack():
    # Other producers may send them; unpack keeps them so consumers see the data.
    assert hivent.unpack(b"\x82\x01\xc0\xc0\xa1x") == {1: None, None: "x"}


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
def test_integer_out_of_range_raises_overflow_error(number):
    with pytest.raises(OverflowError) as info:
        hivent.pack({"list": [0, number]})
    assert str(info.value).startswith('value["list"][1]:')


def test_deep_nesting_is_rejected():
    value: list = []
    for _ in range(100):
        value = [value]
    with pytest.raises(ValueError, match="nesting deeper than 64"):
        hivent.pack(value)


def test_self_reference_is_rejected():
    value: dict = {}
    value["self"] = value
    with pytest.raises(ValueError, match="contains itself"):
        hivent.pack(value)


@pytest.mark.parametrize("text, code, index", [("\ud800", "D800", 0), ("ab\udcff", "DCFF", 2),
                                               ("x\udfff\ud800", "DFFF", 1)])
def test_lone_surrogate_is_rejected_with_path(text, code, index):
    with pytest.raises(ValueError) as info:
        hivent.pack({"s": [text]})
    message = str(info.value)
    assert message.startswith('value["s"][0]: string contains the lone surrogate')
    assert f"U+{code} at index {index}" in message


def test_lone_surrogate_in_key_is_rejected():
    with pytest.raises(ValueError) as info:
        hivent.pack({"k\udc80": 1})
    message = str(info.value)
    # The path shows the key as repr(), so the message itself encodes as UTF-8.
    assert message.startswith("value['k\\udc80']: string contains the lone surrogate U+DC80")
    message.encode("utf-8")


def test_lone_surrogate_rejected_by_emit():
    client = hivent.Client(server={"host": "memory"}, env=False, dispatch="manual")
    try:
        with pytest.raises(ValueError, match=r'^payload\["s"\]: string contains the lone'):
            client.emit("payload:surrogate", {"s": "\udcff"})
    finally:
        client.close()


def test_invalid_utf8_string_unpacks_but_does_not_pack():
    packed = b"\xa3a\xffb"  # fixstr of 3 bytes holding an invalid UTF-8 byte
    value = hivent.unpack(packed)
    assert value == "a\udcffb"
    assert value.encode("utf-8", "surrogateescape") == b"a\xffb"
    with pytest.raises(ValueError, match="lone surrogate U\\+DCFF"):
        hivent.pack(value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x92\x01",
        b"\xdd\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff",
        b"\xc6\x00\x00\x10\x00abc",
        b"\xc9\x00\x00\x00\x05",
        b"\xcb\x00\x00",
        b"\xcf\x00",
        b"\x01\x02",
        b"\x91" * 100 + b"\xc0",
    ],
)
def test_unpack_rejects_malformed_input(data):
    with pytest.raises(ValueError, match="invalid MessagePack"):
        hivent.unpack(data)


def test_unpack_random_bytes_never_crashes():
    rng = random.Random(1234)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        try:
            hivent.unpack(data)
        except ValueError:
            pass


def test_unpack_truncations_of_valid_document():
    packed = hivent.pack({"a": [1, 2.5, "x" * 40, b"y" * 300, {"k": None}], "b": 2**64 - 1})
    for size in range(len(packed)):
        with pytest.raises(ValueError):
            hivent.unpack(packed[:size])


def test_emit_payload_must_be_dict():
    client = hivent.Client(server={"host": "memory"}, env=False, dispatch="manual")
    try:
        with pytest.raises(TypeError, match="payload must be a dict, not list"):
            client.emit("payload:list", [1, 2])
        with pytest.raises(TypeError) as info:
            client.emit("payload:bad", {"a": [1, 2, object()]})
        assert str(info.value).startswith('payload["a"][2]:')
    finally:
        client.close()


def test_github_webhooks_round_trip():
    payloads = webhook_payloads()
    assert len(payloads) >= 300
    for payload in payloads:
        assert hivent.unpack(hivent.pack(payload)) == payload


def test_github_webhooks_match_core_json_conversion():
    # The core's JSON -> MessagePack converter is an independent encoder, so
    # decoding its output here checks the unpacker against another writer.
    for payload in webhook_payloads():
        text = json.dumps(payload)
        assert hivent.unpack(capi.hivent_json_to_msgpack(text)) == payload
        assert json.loads(capi.hivent_msgpack_to_json(hivent.pack(payload))) == payload


def test_core_rejects_invalid_json():
    with pytest.raises(hivent.Payload):
        capi.hivent_json_to_msgpack("{not json")


def test_unhashable_map_key_raises_value_error():
    # fixmap {[{}]: nil}: an array key holding a map cannot be a dict key.
    with pytest.raises(ValueError, match="not hashable"):
        hivent.unpack(b"\x81\x91\x80\xc0")


def test_array_map_key_becomes_tuple():
    assert hivent.unpack(b"\x81\x92\x01\x02\xc0") == {(1, 2): None}
