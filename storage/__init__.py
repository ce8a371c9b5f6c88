"""Persistence: the only package that speaks SQL (the session ledger lands here)."""

from .base import retryable
from .models import (
    Analytics,
    EndReason,
    EventRecord,
    SessionRecord,
    SessionStatus,
    StreamRecord,
    TargetRecord,
    hash_key,
)
from .store import Store, StreamNameTaken

__all__ = [
    "Analytics",
    "EndReason",
    "EventRecord",
    "SessionRecord",
    "SessionStatus",
    "Store",
    "StreamNameTaken",
    "StreamRecord",
    "TargetRecord",
    "hash_key",
    "retryable",
]
