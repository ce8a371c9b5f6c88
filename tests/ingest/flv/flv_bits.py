"""Writing bitstreams for tests: build SPS, sequence header OBUs and AAC/AC-3 headers with
chosen field values, so the parsers can be checked against known answers."""

from __future__ import annotations


class BitWriter:
    def __init__(self) -> None:
        self._bits: list[int] = []

    def u(self, n: int, value: int) -> BitWriter:
        assert 0 <= value < (1 << n) or n == 0
        self._bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))
        return self

    def flag(self, value: bool) -> BitWriter:
        return self.u(1, int(value))

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        length = code.bit_length()
        return self.u(length - 1, 0).u(length, code)

    def se(self, value: int) -> BitWriter:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def uvlc(self, value: int) -> BitWriter:
        return self.ue(value)  # same code as Exp-Golomb

    def to_bytes(self, trailing: bool = True) -> bytes:
        bits = list(self._bits)
        if trailing:
            bits.append(1)  # rbsp_stop_one_bit
        bits.extend([0] * (-len(bits) % 8))
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def escape_rbsp(rbsp: bytes) -> bytes:
    """Insert H.264/HEVC emulation prevention bytes."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def avcc(sps_nal: bytes, profile: int = 100, constraints: int = 0, level: int = 40) -> bytes:
    """An AVCDecoderConfigurationRecord holding one SPS (and no PPS)."""
    return (
        bytes([1, profile, constraints, level, 0xFF, 0xE1])
        + len(sps_nal).to_bytes(2, "big")
        + sps_nal
        + b"\x00"
    )


def hvcc(nal_arrays: list[tuple[int, bytes]], profile_idc: int = 1) -> bytes:
    """An HEVCDecoderConfigurationRecord with one NAL unit per (type, nal) array."""
    header = bytearray(23)
    header[0] = 1
    header[1] = profile_idc
    header[21] = 0x0F
    header[22] = len(nal_arrays)
    for nal_type, nal in nal_arrays:
        header += bytes([0x80 | nal_type]) + (1).to_bytes(2, "big")
        header += len(nal).to_bytes(2, "big") + nal
    return bytes(header)
