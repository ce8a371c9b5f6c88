"""Persistence: the only package that speaks SQL (the session ledger lands here)."""

from .base import retryable
from .models import (
    END_REASONS,
    Analytics,
    EventRecord,
    SessionRecord,
    SessionStatus,
    StreamRecord,
    TargetRecord,
    hash_key,
)
from .store import Store, StreamNameTaken

__all__ = [
    "END_REASONS",
    "Analytics",
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
