"""Webhooks and their deliveries as JSON (API and CLI alike); the secret only on demand."""

from __future__ import annotations

from typing import Any

from sessions.http import schemas_webhooks as schemas
from sessions.http.timefmt import format_time, round_seconds
from storage import DeliveryRecord, WebhookRecord


def webhook_view(webhook: WebhookRecord) -> schemas.Webhook:
    return schemas.Webhook(**_fields(webhook))


def webhook_with_secret_view(webhook: WebhookRecord) -> schemas.WebhookWithSecret:
    """Only right after create or rotate-secret."""
    return schemas.WebhookWithSecret(**_fields(webhook), secret=webhook.secret)


def _fields(webhook: WebhookRecord) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "events": list(webhook.events),
        "description": webhook.description,
        "disabled": webhook.disabled,
        "created_at": format_time(webhook.created_at),
        "updated_at": format_time(webhook.updated_at),
    }


def delivery_view(delivery: DeliveryRecord) -> schemas.Delivery:
    return schemas.Delivery(
        id=delivery.id,
        event_id=delivery.event_id,
        event=delivery.event,
        state=delivery.state,
        attempts=[
            schemas.Attempt(
                at=format_time(a.at),
                status_code=a.status_code,
                latency=round_seconds(a.latency),
                error=a.error,
            )
            for a in delivery.attempt_log
        ],
        next_attempt=format_time(delivery.next_attempt) if delivery.state == "pending" else None,
        stream_id=delivery.stream_id,
        session_id=delivery.session_id,
        created_at=format_time(delivery.created_at),
        updated_at=format_time(delivery.updated_at),
    )
