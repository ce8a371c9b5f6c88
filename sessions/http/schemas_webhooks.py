"""The webhooks' JSON (see :mod:`sessions.http.schemas` for the conventions)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sessions.http.schemas import Page
from sessions.webhooks.endpoints import (
    DESCRIPTION_PATTERN,
    MAX_DESCRIPTION_LENGTH,
    MAX_URL_LENGTH,
    URL_PATTERN,
)
from sessions.webhooks.events import ALL_EVENTS, DEFAULT_EVENTS

_TIME = "ISO 8601 UTC with milliseconds, e.g. 2026-11-21T19:24:10.123Z"
_URL_HELP = (
    "Where deliveries are POSTed: an http:// or https:// URL (local and private addresses "
    "are allowed: the URL is the operator's trust decision), with a host name or IPv4 "
    "address, without a user name, password or #fragment, in printable ASCII."
)
_URL_RULES: dict[str, Any] = {"pattern": URL_PATTERN}
_DESCRIPTION_RULES: dict[str, Any] = {"pattern": DESCRIPTION_PATTERN}
_EVENTS_HELP = (
    f"The events to deliver, of: {', '.join(ALL_EVENTS)}. Left out: every one but "
    f"publish.rejected ({', '.join(DEFAULT_EVENTS)})."
)
EventName = Literal[
    "stream.started",
    "stream.idle",
    "session.reconnecting",
    "session.resumed",
    "recording.ready",
    "recording.failed",
    "stream.health",
    "stream.created",
    "stream.deleted",
    "publish.rejected",
]


class WebhookCreate(BaseModel):
    """A new webhook."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(
        description=_URL_HELP,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        json_schema_extra=_URL_RULES,
    )
    events: list[EventName] | None = Field(None, description=_EVENTS_HELP, min_length=1)
    description: str = Field(
        "", max_length=MAX_DESCRIPTION_LENGTH, json_schema_extra=_DESCRIPTION_RULES
    )
    disabled: bool = Field(False, description="A disabled webhook gets no new events.")


class WebhookUpdate(BaseModel):
    """Fields to change; those left out (or null) stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str | None = Field(
        None,
        description=_URL_HELP,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        json_schema_extra=_URL_RULES,
    )
    events: list[EventName] | None = Field(None, description=_EVENTS_HELP, min_length=1)
    description: str | None = Field(
        None, max_length=MAX_DESCRIPTION_LENGTH, json_schema_extra=_DESCRIPTION_RULES
    )
    disabled: bool | None = Field(
        None,
        description="A disabled webhook gets no new events; its pending deliveries wait "
        "until it is enabled again.",
    )


class Webhook(BaseModel):
    """Where events are delivered, signed with the webhook's secret."""

    id: str
    url: str
    events: list[str]
    description: str
    disabled: bool
    created_at: str = Field(description=_TIME)
    updated_at: str = Field(description=_TIME)


class WebhookWithSecret(Webhook):
    """A webhook with its secret: only in the answers to create and rotate-secret."""

    secret: str = Field(
        description="Signs every delivery (header Rtmp-Ingest-Signature). Shown only this once."
    )


class WebhookPage(Page):
    items: list[Webhook]


class Attempt(BaseModel):
    at: str = Field(description=_TIME)
    status_code: int | None = Field(description="The receiver's status; null: no answer.")
    latency: float = Field(description="Seconds from sending to the answer or the error.")
    error: str | None


class Delivery(BaseModel):
    """One event for one webhook, and every attempt to deliver it."""

    id: int
    event_id: str = Field(description="The body's id (receivers de-duplicate on it).")
    event: str
    state: Literal["pending", "delivered", "failed"] = Field(
        description="pending (to be tried, again or for the first time), delivered (a 2xx "
        "answer), failed (given up after [webhooks] give_up_after seconds)."
    )
    attempts: list[Attempt] = Field(description="Oldest first.")
    next_attempt: str | None = Field(description=f"While pending. {_TIME}")
    stream_id: str | None
    session_id: str | None
    created_at: str = Field(description=_TIME)
    updated_at: str = Field(description=_TIME)


class DeliveryPage(Page):
    items: list[Delivery]
