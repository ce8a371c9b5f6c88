"""The RTMP handshake: packet sizes, S1/C1 construction, version checks and digest detection.

The simple handshake echoes the peer's C1/S1. FFmpeg puts a Flash-style HMAC-SHA256 digest
into C1 but verifies the server's reply only when playing, so a publisher needs nothing but
the echo; the digest is detected for the record, never required, and C1/C2 content is never
grounds for rejection.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

RTMP_VERSION = 3
PACKET_SIZE = 1536

#: The key a Flash-style client signs C1 with ("Genuine Adobe Flash Player 001").
_CLIENT_KEY = b"Genuine Adobe Flash Player 001"
_DIGEST_SIZE = 32


def make_packet(uptime_ms: int, random: Callable[[int], bytes] = os.urandom) -> bytes:
    """A C1/S1: 4-byte time, 4 zero bytes, 1528 random bytes."""
    return (uptime_ms & 0xFFFFFFFF).to_bytes(4, "big") + bytes(4) + random(PACKET_SIZE - 8)


def describe_bad_version(version: int) -> str:
    """Why a C0/S0 other than 3 is refused, in words an operator recognises."""
    if version == 0x06 or version == 0x08:
        return f"encrypted RTMP (RTMPE, version byte {version:#04x}) is not supported"
    if version == 0x16:
        return "a TLS ClientHello arrived on the plain RTMP port (RTMPS has its own port)"
    if chr(version) in "GPHCDO":
        return "an HTTP request arrived on the RTMP port"
    return f"unsupported RTMP version byte {version:#04x}"


def _digest_offset(c1: bytes, scheme: int) -> int:
    base = 8 if scheme == 0 else 772
    return sum(c1[base : base + 4]) % 728 + base + 4


def digest_scheme(c1: bytes) -> int | None:
    """The Flash digest scheme (0 or 1) whose HMAC matches C1, or None for a plain C1."""
    if len(c1) != PACKET_SIZE or c1[4:8] == bytes(4):
        return None
    for scheme in (0, 1):
        offset = _digest_offset(c1, scheme)
        message = c1[:offset] + c1[offset + _DIGEST_SIZE :]
        expected = hmac.new(_CLIENT_KEY, message, hashlib.sha256).digest()
        if hmac.compare_digest(expected, c1[offset : offset + _DIGEST_SIZE]):
            return scheme
    return None


def sign_packet(packet: bytes, scheme: int = 0) -> bytes:
    """``packet`` with a Flash-style client digest placed as the given scheme places it
    (what FFmpeg sends as C1; used to exercise servers that see such clients)."""
    offset = _digest_offset(packet, scheme)
    message = packet[:offset] + packet[offset + _DIGEST_SIZE :]
    digest = hmac.new(_CLIENT_KEY, message, hashlib.sha256).digest()
    return packet[:offset] + digest + packet[offset + _DIGEST_SIZE :]
