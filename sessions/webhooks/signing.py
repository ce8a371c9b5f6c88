"""The ``Rtmp-Ingest-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256>`` of
``"<t>.<raw body>"`` with the webhook's secret (the scheme Stripe and Livepeer use). The
time is signed too, so a receiver can refuse an old delivery replayed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

HEADER: Final = "Rtmp-Ingest-Signature"
#: Bytes of randomness in a secret (256 bits).
SECRET_BYTES: Final = 32


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(SECRET_BYTES)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: float = 300
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` (and, given ``now``, was made
    within ``tolerance`` seconds of it)."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields.get("t", [""])[0])
    except ValueError:
        return False
    if now is not None and abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))
