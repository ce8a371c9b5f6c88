import contextlib
import math
import struct
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ingest.rtmp.amf0 import UNDEFINED, EcmaArray, Undefined, decode_all, decode_value, encode
from ingest.rtmp.errors import RemoteProtocolError
from ingest.rtmp.limits import Limits

END = b"\x00\x00\x09"


def _obj(props: bytes) -> bytes:
    return b"\x03" + props + END


def _key(name: str) -> bytes:
    raw = name.encode()
    return struct.pack(">H", len(raw)) + raw


# ------------------------------------------------------------------ literal encodings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, b"\x00\x3f\xf0\x00\x00\x00\x00\x00\x00"),
        (0, b"\x00" + bytes(8)),
        (-2, b"\x00\xc0\x00\x00\x00\x00\x00\x00\x00"),
        (True, b"\x01\x01"),
        (False, b"\x01\x00"),
        ("", b"\x02\x00\x00"),
        ("live", b"\x02\x00\x04live"),
        ("é", b"\x02\x00\x02\xc3\xa9"),
        (None, b"\x05"),
        (UNDEFINED, b"\x06"),
        ({}, b"\x03" + END),
        ({"a": 1.0}, b"\x03\x00\x01a\x00\x3f\xf0" + bytes(6) + END),
        (EcmaArray(), b"\x08\x00\x00\x00\x00" + END),
        (EcmaArray(x=None), b"\x08\x00\x00\x00\x01\x00\x01x\x05" + END),
        ([], b"\x0a\x00\x00\x00\x00"),
        ([None, True], b"\x0a\x00\x00\x00\x02\x05\x01\x01"),
        ((None,), b"\x0a\x00\x00\x00\x01\x05"),
    ],
)
def test_encode_literal(value: Any, expected: bytes) -> None:
    assert encode(value) == expected


def test_encode_command_literal() -> None:
    assert encode("connect", 1.0) == b"\x02\x00\x07connect\x00\x3f\xf0\x00\x00\x00\x00\x00\x00"


def test_encode_nothing() -> None:
    assert encode() == b""


def test_bool_is_not_a_number() -> None:
    assert encode(True)[0] == 0x01
    assert decode_all(encode(True)) == [True]
    assert type(decode_all(encode(1))[0]) is float


def test_long_string_boundary() -> None:
    short = "a" * 0xFFFF
    long = "a" * 0x10000
    assert encode(short)[:3] == b"\x02\xff\xff"
    assert encode(long)[:5] == b"\x0c\x00\x01\x00\x00"
    assert decode_all(encode(short, long)) == [short, long]


@pytest.mark.parametrize("value", [b"bytes", object(), {1: 2}, 1j, {1.0}])
def test_encode_unsupported_type(value: Any) -> None:
    with pytest.raises(TypeError):
        encode(value)


def test_encode_overlong_key() -> None:
    with pytest.raises(ValueError):
        encode({"k" * 0x10000: 1})


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    "value",
    [
        0.0,
        -1.5,
        1e300,
        math.inf,
        -math.inf,
        True,
        False,
        "",
        "connect",
        "日本語",
        None,
        UNDEFINED,
        {},
        {"nested": {"list": [1.0, "x", None, {"deep": [UNDEFINED]}]}},
        EcmaArray(duration=0.0, width=1920.0, height=1080.0, encoder="obs-output module"),
        [],
        [[], [[]], {"": 1.0}],
    ],
)
def test_round_trip(value: Any) -> None:
    assert decode_all(encode(value)) == [value]


def test_round_trip_keeps_ecma_array_type() -> None:
    ecma, plain = decode_all(encode(EcmaArray(a=1.0), {"b": 2.0}))
    assert type(ecma) is EcmaArray
    assert type(plain) is dict


def test_nan_round_trip() -> None:
    (value,) = decode_all(encode(math.nan))
    assert math.isnan(value)


def test_obs_connect_command_round_trip() -> None:
    command_object = {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
        "swfUrl": "rtmp://host/live",
        "tcUrl": "rtmp://host/live",
    }
    data = encode("connect", 1.0, command_object)
    assert decode_all(data) == ["connect", 1.0, command_object]
    assert list(decode_all(data)[2]) == list(command_object)  # property order kept


def test_undefined_singleton() -> None:
    assert Undefined() is UNDEFINED
    assert repr(UNDEFINED) == "UNDEFINED"
    assert decode_all(b"\x06")[0] is UNDEFINED


def test_decode_value_offsets() -> None:
    data = encode("publish", 5.0, None, "stream", "live")
    value, offset = decode_value(data, 0)
    assert (value, offset) == ("publish", 10)
    value, offset = decode_value(data, offset)
    assert (value, offset) == (5.0, 19)
    assert decode_value(data, offset) == (None, 20)


@pytest.mark.parametrize("data", [bytearray(encode("x", 2.0)), memoryview(encode("x", 2.0))])
def test_decode_accepts_buffers(data: bytearray | memoryview) -> None:
    assert decode_all(data) == ["x", 2.0]
    assert decode_value(data, 4) == (2.0, 13)


def test_decode_value_bad_offset() -> None:
    with pytest.raises(ValueError):
        decode_value(b"\x05", 2)
    with pytest.raises(RemoteProtocolError, match="missing"):
        decode_value(b"\x05", 1)


# ------------------------------------------------------------------ decoding details


@pytest.mark.parametrize("count", [0, 1, 3, 0xFFFFFFFF])
def test_ecma_array_count_ignored(count: int) -> None:
    props = _key("a") + b"\x05" + _key("b") + b"\x01\x01" + _key("c") + b"\x02\x00\x01z"
    data = b"\x08" + struct.pack(">I", count) + props + END
    assert decode_all(data) == [{"a": None, "b": True, "c": "z"}]


def test_object_end_marker_only_closes_on_empty_key() -> None:
    # An empty key followed by a real value is a property, not the end.
    assert decode_all(_obj(_key("") + b"\x05")) == [{"": None}]


def test_object_end_outside_object() -> None:
    with pytest.raises(RemoteProtocolError, match="outside an object"):
        decode_all(b"\x09")


def test_values_after_object() -> None:
    assert decode_all(_obj(_key("k") + b"\x05") + b"\x05") == [{"k": None}, None]


def test_typed_object() -> None:
    data = b"\x10" + _key("flex.Foo") + _key("x") + b"\x00" + struct.pack(">d", 3.0) + END
    assert decode_all(data) == [{"x": 3.0}]


def test_date_decodes_to_millis() -> None:
    assert decode_all(b"\x0b" + struct.pack(">dh", 1.5e12, 0) + b"\x05") == [1.5e12, None]


def test_unsupported_and_null() -> None:
    assert decode_all(b"\x0d\x05") == [None, None]


def test_invalid_utf8_replaced() -> None:
    assert decode_all(b"\x02\x00\x02\xff\xfe") == ["\ufffd\ufffd"]


def test_boolean_nonzero_is_true() -> None:
    assert decode_all(b"\x01\x02") == [True]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x11\x00", UNDEFINED),
        (b"\x11\x01", None),
        (b"\x11\x02", False),
        (b"\x11\x03", True),
        (b"\x11\x04\x05", 5.0),
        (b"\x11\x04\x81\x00", 128.0),
        (b"\x11\x04\xbf\xff\xff\xff", 0x0FFFFFFF),
        (b"\x11\x04\xff\xff\xff\xff", -1.0),
        (b"\x11\x04\xc0\x80\x80\x00", -0x10000000),
        (b"\x11\x05" + struct.pack(">d", 2.5), 2.5),
        (b"\x11\x06\x01", ""),
        (b"\x11\x06\x0fconnect", "connect"),
    ],
)
def test_amf3_switch(data: bytes, expected: Any) -> None:
    assert decode_all(data) == [expected]


def test_amf3_wrapped_command() -> None:
    data = b"\x11\x06\x0fconnect" + b"\x11\x04\x01" + b"\x11\x01"
    assert decode_all(data) == ["connect", 1.0, None]


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x42", "unknown AMF0 marker 0x42"),
        (b"\xff", "unknown AMF0 marker 0xff"),
        (b"\x04", "unknown AMF0 marker 0x04"),
        (b"\x0e", "unknown AMF0 marker 0x0e"),
        (b"\x02\x00\x05abc", "string overruns"),
        (b"\x02\x00", "string length overruns"),
        (b"\x0c\x00\x00\x01\x00abc", "long string overruns"),
        (b"\x0c\xff\xff\xff\xff", "long string overruns"),
        (b"\x00\x3f\xf0\x00", "number overruns"),
        (b"\x01", "boolean overruns"),
        (b"\x0b" + bytes(8) + b"\x00", "date time zone overruns"),
        (b"\x03\x00\x00", "missing its end marker"),
        (b"\x03" + b"\x00\x01a\x05", "missing its end marker"),
        (b"\x03" + b"\x00\x01a\x05\x00\x00", "missing its end marker"),
        (b"\x03" + b"\x00\x09abc\x05\x00\x00\x09", "property name overruns"),
        (b"\x03\x00\x01a", "value is missing"),
        (b"\x08\x00\x00", "ECMA array count overruns"),
        (b"\x08\x00\x00\x00\x01\x00\x01a\x05", "missing its end marker"),
        (b"\x10\x00\x05ab", "class name overruns"),
        (b"\x0a\xff\xff\xff\xff", "strict array count 4294967295 exceeds"),
        (b"\x0a\x00\x00\x00\x03\x05\x05", "strict array count 3 exceeds"),
        (b"\x0a\x00\x00\x00\x02\x05\x00", "number overruns"),
        (b"\x07\x00\x01", "reference not supported"),
        (b"\x11", "missing after the AMF3 switch"),
        (b"\x11\x08", "unsupported AMF3 marker 0x08"),
        (b"\x11\x0a\x0b\x01\x01", "unsupported AMF3 marker 0x0a"),
        (b"\x11\x04\x80", "AMF3 integer overruns"),
        (b"\x11\x05\x00", "AMF3 double overruns"),
        (b"\x11\x06\x00", "AMF3 string references"),
        (b"\x11\x06\x0bab", "AMF3 string overruns"),
        (b"\x11\x06\xff\xff\xff\xff", "AMF3 string overruns"),
    ],
)
def test_garbage_rejected(data: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        decode_all(data)


def _nested_objects(depth: int) -> bytes:
    return b"\x03\x00\x01k" * depth + b"\x05" + END * depth


def _nested_arrays(depth: int) -> bytes:
    return b"\x0a\x00\x00\x00\x01" * depth + b"\x05"


@pytest.mark.parametrize("build", [_nested_objects, _nested_arrays])
def test_depth_cap(build: Any) -> None:
    assert Limits().max_amf_depth == 16
    assert len(decode_all(build(16))) == 1
    with pytest.raises(RemoteProtocolError, match="nesting deeper than 16"):
        decode_all(build(17))


def test_depth_cap_custom() -> None:
    assert len(decode_all(_nested_objects(2), max_depth=2)) == 1
    with pytest.raises(RemoteProtocolError, match="nesting deeper than 2"):
        decode_all(_nested_objects(3), max_depth=2)


def test_mixed_nesting_depth() -> None:
    value: Any = None
    for level in range(16):
        value = [value] if level % 2 else EcmaArray(k=value)
    assert decode_all(encode(value)) == [value]
    with pytest.raises(RemoteProtocolError, match="nesting"):
        decode_all(encode({"k": value}))


def test_huge_max_depth_still_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_all(_nested_objects(5000), max_depth=10**6)


def test_item_cap() -> None:
    data = encode(*([None] * 10))
    assert len(decode_all(data, max_items=10)) == 10
    with pytest.raises(RemoteProtocolError, match="more than 9 values"):
        decode_all(data, max_items=9)


def test_item_cap_counts_nested_values() -> None:
    data = encode({"a": [None, None], "b": None})  # object, list, 2 nulls, null = 5
    assert decode_all(data, max_items=5)
    with pytest.raises(RemoteProtocolError, match="more than 4 values"):
        decode_all(data, max_items=4)


def test_item_cap_default() -> None:
    cap = Limits().max_amf_items
    assert len(decode_all(encode([None] * (cap - 1)))[0]) == cap - 1
    with pytest.raises(RemoteProtocolError, match=f"more than {cap} values"):
        decode_all(encode([None] * cap))


def test_item_cap_rejects_strict_array_count_early() -> None:
    data = b"\x0a\x00\x00\x01\x00" + b"\x05" * 256
    with pytest.raises(RemoteProtocolError, match="more than 100 values"):
        decode_all(data, max_items=100)


# ------------------------------------------------------------------ properties


@given(st.binary(max_size=512))
def test_random_bytes_only_raise_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_all(data)


@given(st.binary(max_size=64))
def test_prefixed_random_bytes_only_raise_protocol_error(data: bytes) -> None:
    for marker in (b"\x03", b"\x08\x00\x00\x00\x00", b"\x0a\x00\x00\x00\x02", b"\x11"):
        with contextlib.suppress(RemoteProtocolError):
            decode_all(marker + data)


_scalars = (
    st.none()
    | st.just(UNDEFINED)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
        | st.dictionaries(st.text(max_size=8), children, max_size=5).map(EcmaArray)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@given(_values)
def test_round_trip_property(value: Any) -> None:
    assume(_depth(value) <= Limits().max_amf_depth)
    assert decode_all(encode(value)) == [value]


@given(st.lists(_values, max_size=4))
def test_round_trip_sequence_property(values: list[Any]) -> None:
    assume(all(_depth(value) <= Limits().max_amf_depth for value in values))
    data = encode(*values)
    assert decode_all(data) == values
    offset = 0
    for expected in values:
        value, offset = decode_value(data, offset)
        assert value == expected
    assert offset == len(data)
