"""Bit-level reading for codec configuration parsing (H.264/HEVC SPS, AV1, AAC).

Only used on sequence headers, never per frame. The whole buffer is turned into one
Python integer once; every read is then a shift and a mask, which is simpler and faster
in CPython than walking bytes. Reading past the end raises :class:`BitstreamError`,
which the configuration parsers catch and turn into "unknown" fields.
"""

from __future__ import annotations

__all__ = ["BitReader", "BitstreamError", "annexb_nal_units", "unescape_rbsp"]


class BitstreamError(Exception):
    """A codec bitstream ended early or holds a value out of range."""


class BitReader:
    """MSB-first bit reader with Exp-Golomb (ue/se) and AV1 uvlc/leb128 helpers."""

    __slots__ = ("_bits", "_pos", "_value")

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Bits not read yet."""
        return self._bits - self._pos

    def u(self, n: int) -> int:
        """Read an ``n``-bit unsigned value (``n`` may be 0)."""
        shift = self._bits - self._pos - n
        if shift < 0:
            raise BitstreamError(f"read of {n} bits past the end ({self.remaining} left)")
        self._pos += n
        return (self._value >> shift) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if n > self.remaining:
            raise BitstreamError(f"skip of {n} bits past the end ({self.remaining} left)")
        self._pos += n

    def _leading_zeros(self) -> int:
        left = self._bits - self._pos
        rest = self._value & ((1 << left) - 1)
        if rest == 0:
            raise BitstreamError("Exp-Golomb code runs past the end")
        zeros = left - rest.bit_length()
        if zeros > 31:
            raise BitstreamError(f"Exp-Golomb code with {zeros} leading zeros")
        self._pos += zeros
        return zeros

    def ue(self) -> int:
        """Unsigned Exp-Golomb ``ue(v)``."""
        zeros = self._leading_zeros()
        return self.u(zeros + 1) - 1

    def se(self) -> int:
        """Signed Exp-Golomb ``se(v)``: 1, -1, 2, -2..."""
        k = self.ue()
        return (k + 1) >> 1 if k & 1 else -(k >> 1)

    def uvlc(self) -> int:
        """AV1 ``uvlc()``: leading zeros, a 1, then as many value bits."""
        zeros = self._leading_zeros()
        self.skip(1)
        return self.u(zeros) + (1 << zeros) - 1


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove H.264/HEVC emulation prevention bytes (``00 00 03`` becomes ``00 00``)."""
    index = nal.find(b"\x00\x00\x03")
    if index < 0:
        return nal
    out = bytearray()
    start = 0
    while index >= 0:
        out += nal[start : index + 2]
        start = index + 3
        index = nal.find(b"\x00\x00\x03", start)
    out += nal[start:]
    return bytes(out)


def annexb_nal_units(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream (``00 00 01`` / ``00 00 00 01`` start codes) into NAL
    units. Used only for the rare sequence header sent in Annex B instead of a
    configuration record."""
    units: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        start += 3
        end = data.find(b"\x00\x00\x01", start)
        unit = data[start:] if end < 0 else data[start:end]
        units.append(unit.rstrip(b"\x00"))
        start = end
    return [unit for unit in units if unit]
