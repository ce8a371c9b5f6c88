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
from .outbox import OutboxEvent
from .store import Store, StreamNameTaken
from .webhooks import AttemptRecord, DeliveryRecord, PendingDelivery, WebhookRecord

__all__ = [
    "Analytics",
    "AttemptRecord",
    "DeliveryRecord",
    "EndReason",
    "EventRecord",
    "OutboxEvent",
    "PendingDelivery",
    "SessionRecord",
    "SessionStatus",
    "Store",
    "StreamNameTaken",
    "StreamRecord",
    "TargetRecord",
    "WebhookRecord",
    "hash_key",
    "retryable",
]
