"""AMF0 encoding and decoding for RTMP command and data messages.

The decoder walks an index over the message bytes and treats them as hostile: every
length is checked against the bytes left before anything is sliced, array counts are
never used to allocate, nesting depth and the number of decoded values are capped, and
any malformed input raises :class:`~ingest.rtmp.errors.RemoteProtocolError` (and nothing
else).

Python mapping:

==================  =======================================================
AMF0 type           Python
==================  =======================================================
number, date        ``float`` (a date is its milliseconds since the epoch)
boolean             ``bool``
string, long string ``str`` (invalid UTF-8 is replaced, not rejected)
object, typed obj.  ``dict[str, Any]`` (a typed object's class name is dropped)
ECMA array          :class:`EcmaArray` (a ``dict`` subclass)
strict array        ``list[Any]``
null, unsupported   ``None``
undefined           :data:`UNDEFINED`
==================  =======================================================

A value behind the AMF3 switch marker (0x11) is decoded from the small AMF3 subset
that Flash-era encoders put in commands: undefined, null, booleans, integers (as
``float``), doubles and inline strings.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from ingest.rtmp.errors import RemoteProtocolError
from ingest.rtmp.limits import Limits

__all__ = ["UNDEFINED", "EcmaArray", "Undefined", "decode_all", "decode_value", "encode"]

_DEFAULT_DEPTH: Final = Limits().max_amf_depth
_DEFAULT_ITEMS: Final = Limits().max_amf_items

NUMBER: Final = 0x00
BOOLEAN: Final = 0x01
STRING: Final = 0x02
OBJECT: Final = 0x03
NULL: Final = 0x05
UNDEFINED_MARKER: Final = 0x06
REFERENCE: Final = 0x07
ECMA_ARRAY: Final = 0x08
OBJECT_END: Final = 0x09
STRICT_ARRAY: Final = 0x0A
DATE: Final = 0x0B
LONG_STRING: Final = 0x0C
UNSUPPORTED: Final = 0x0D
TYPED_OBJECT: Final = 0x10
AMF3_SWITCH: Final = 0x11

_F64 = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_END_MARKER: Final = b"\x00\x00\x09"


class Undefined:
    """The AMF ``undefined`` value (distinct from ``null``, which maps to ``None``)."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = Undefined()


class EcmaArray(dict[str, Any]):
    """A ``dict`` that encodes as an AMF0 ECMA array instead of an object."""

    def __repr__(self) -> str:
        return f"EcmaArray({dict.__repr__(self)})"


# --------------------------------------------------------------------------- encoding


def encode(*values: Any) -> bytes:
    """Return the concatenated AMF0 encodings of ``values``.

    Raises :class:`TypeError` for a Python type with no AMF0 mapping (and for non-``str``
    object keys) and :class:`ValueError` for an object key of 65536 UTF-8 bytes or more.
    """
    out = bytearray()
    for value in values:
        _encode_into(out, value)
    return bytes(out)


def _encode_string_body(out: bytearray, text: str) -> None:
    raw = text.encode("utf-8")
    if len(raw) < 0x10000:
        out.append(STRING)
        out += _U16.pack(len(raw))
    else:
        out.append(LONG_STRING)
        out += _U32.pack(len(raw))
    out += raw


def _encode_properties(out: bytearray, mapping: dict[Any, Any]) -> None:
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"AMF0 object keys must be str, not {type(key).__name__}")
        raw = key.encode("utf-8")
        if len(raw) >= 0x10000:
            raise ValueError("AMF0 object key is longer than 65535 bytes")
        out += _U16.pack(len(raw))
        out += raw
        _encode_into(out, item)
    out += _END_MARKER


def _encode_into(out: bytearray, value: Any) -> None:
    if value is None:
        out.append(NULL)
    elif isinstance(value, bool):
        out.append(BOOLEAN)
        out.append(1 if value else 0)
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _F64.pack(float(value))
    elif isinstance(value, str):
        _encode_string_body(out, value)
    elif isinstance(value, Undefined):
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, EcmaArray):
        out.append(ECMA_ARRAY)
        out += _U32.pack(len(value))
        _encode_properties(out, value)
    elif isinstance(value, dict):
        out.append(OBJECT)
        _encode_properties(out, value)
    elif isinstance(value, list | tuple):
        out.append(STRICT_ARRAY)
        out += _U32.pack(len(value))
        for item in value:
            _encode_into(out, item)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


# --------------------------------------------------------------------------- decoding


def decode_all(
    data: bytes | bytearray | memoryview,
    *,
    max_depth: int = _DEFAULT_DEPTH,
    max_items: int = _DEFAULT_ITEMS,
) -> list[Any]:
    """Decode AMF0 values until ``data`` is exhausted; the caps apply to the whole call."""
    decoder = _Decoder(data, 0, max_depth, max_items)
    values: list[Any] = []
    try:
        while decoder.pos < decoder.end:
            values.append(decoder.value(0))
    except RecursionError:  # only reachable with a caller-raised max_depth
        raise RemoteProtocolError("AMF0 nesting too deep") from None
    return values


def decode_value(
    data: bytes | bytearray | memoryview,
    offset: int = 0,
    *,
    max_depth: int = _DEFAULT_DEPTH,
    max_items: int = _DEFAULT_ITEMS,
) -> tuple[Any, int]:
    """Decode one AMF0 value at ``offset``; return it and the offset just past it."""
    decoder = _Decoder(data, offset, max_depth, max_items)
    try:
        value = decoder.value(0)
    except RecursionError:  # only reachable with a caller-raised max_depth
        raise RemoteProtocolError("AMF0 nesting too deep") from None
    return value, decoder.pos


class _Decoder:
    __slots__ = ("buf", "end", "items", "max_depth", "max_items", "pos")

    def __init__(
        self, data: bytes | bytearray | memoryview, offset: int, max_depth: int, max_items: int
    ) -> None:
        self.buf = data if isinstance(data, bytes) else bytes(data)
        self.end = len(self.buf)
        if not 0 <= offset <= self.end:
            raise ValueError(f"offset {offset} is outside the data (length {self.end})")
        self.pos = offset
        self.items = 0
        self.max_depth = max_depth
        self.max_items = max_items

    def _need(self, size: int, what: str) -> int:
        """Check that ``size`` bytes remain; return the current position."""
        pos = self.pos
        if size > self.end - pos:
            raise RemoteProtocolError(f"AMF0 {what} overruns the message")
        return pos

    def _u16(self, what: str) -> int:
        pos = self._need(2, what)
        self.pos = pos + 2
        return (self.buf[pos] << 8) | self.buf[pos + 1]

    def _u32(self, what: str) -> int:
        pos = self._need(4, what)
        self.pos = pos + 4
        return int(_U32.unpack_from(self.buf, pos)[0])

    def _f64(self, what: str) -> float:
        pos = self._need(8, what)
        self.pos = pos + 8
        return float(_F64.unpack_from(self.buf, pos)[0])

    def _text(self, length: int, what: str) -> str:
        pos = self._need(length, what)
        self.pos = pos + length
        return self.buf[pos : pos + length].decode("utf-8", errors="replace")

    def _count_item(self) -> None:
        self.items += 1
        if self.items > self.max_items:
            raise RemoteProtocolError(f"AMF0 data has more than {self.max_items} values")

    def value(self, depth: int) -> Any:
        if self.pos >= self.end:
            raise RemoteProtocolError("AMF0 value is missing (message truncated)")
        marker = self.buf[self.pos]
        self.pos += 1
        self._count_item()
        if marker == STRING:
            return self._text(self._u16("string length"), "string")
        if marker == NUMBER:
            return self._f64("number")
        if marker == OBJECT:
            return self._properties(depth + 1, {})
        if marker == NULL:
            return None
        if marker == BOOLEAN:
            pos = self._need(1, "boolean")
            self.pos = pos + 1
            return self.buf[pos] != 0
        if marker == ECMA_ARRAY:
            self._u32("ECMA array count")  # ignored: encoders send wrong counts
            return self._properties(depth + 1, EcmaArray())
        if marker == STRICT_ARRAY:
            return self._strict_array(depth + 1)
        if marker == UNDEFINED_MARKER:
            return UNDEFINED
        if marker == LONG_STRING:
            return self._text(self._u32("long string length"), "long string")
        if marker == TYPED_OBJECT:
            self._text(self._u16("typed object class name length"), "typed object class name")
            return self._properties(depth + 1, {})
        if marker == DATE:
            millis = self._f64("date")
            self._need(2, "date time zone")
            self.pos += 2
            return millis
        if marker == UNSUPPORTED:
            return None
        if marker == AMF3_SWITCH:
            return self._amf3()
        if marker == REFERENCE:
            raise RemoteProtocolError("AMF0 reference not supported")
        if marker == OBJECT_END:
            raise RemoteProtocolError("AMF0 object end marker outside an object")
        raise RemoteProtocolError(f"unknown AMF0 marker 0x{marker:02x}")

    def _properties(self, depth: int, result: dict[str, Any]) -> dict[str, Any]:
        if depth > self.max_depth:
            raise RemoteProtocolError(f"AMF0 nesting deeper than {self.max_depth}")
        buf = self.buf
        while True:
            if self.end - self.pos < 3:
                raise RemoteProtocolError("AMF0 object is missing its end marker")
            key_length = self._u16("property name length")
            if key_length == 0 and buf[self.pos] == OBJECT_END:
                self.pos += 1
                return result
            key = self._text(key_length, "property name")
            result[key] = self.value(depth)

    def _strict_array(self, depth: int) -> list[Any]:
        if depth > self.max_depth:
            raise RemoteProtocolError(f"AMF0 nesting deeper than {self.max_depth}")
        count = self._u32("strict array count")
        if count > self.end - self.pos:
            raise RemoteProtocolError(
                f"AMF0 strict array count {count} exceeds the bytes left in the message"
            )
        if count > self.max_items - self.items:
            raise RemoteProtocolError(f"AMF0 data has more than {self.max_items} values")
        return [self.value(depth) for _ in range(count)]

    # AMF3 subset ------------------------------------------------------------------

    def _u29(self) -> int:
        result = 0
        for index in range(4):
            pos = self._need(1, "AMF3 integer")
            byte = self.buf[pos]
            self.pos = pos + 1
            if index == 3:
                return (result << 8) | byte
            result = (result << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        return result

    def _amf3(self) -> Any:
        if self.pos >= self.end:
            raise RemoteProtocolError("AMF3 value is missing after the AMF3 switch marker")
        marker = self.buf[self.pos]
        self.pos += 1
        if marker == 0x00:
            return UNDEFINED
        if marker == 0x01:
            return None
        if marker == 0x02:
            return False
        if marker == 0x03:
            return True
        if marker == 0x04:
            value = self._u29()
            if value & 0x10000000:
                value -= 0x20000000
            return float(value)
        if marker == 0x05:
            return self._f64("AMF3 double")
        if marker == 0x06:
            header = self._u29()
            if not header & 1:
                raise RemoteProtocolError("AMF3 string references are not supported")
            return self._text(header >> 1, "AMF3 string")
        raise RemoteProtocolError(f"unsupported AMF3 marker 0x{marker:02x}")
