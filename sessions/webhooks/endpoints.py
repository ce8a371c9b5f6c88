"""Webhook endpoints, created, changed, re-keyed and deleted over the API and the CLI.

A webhook's URL is the operator's trust decision: any http:// or https:// URL is taken,
local and private addresses included (receivers often run on the same host), but not one
with a user name or password in it (it would be shown by every listing), a fragment, or
characters that are not printable ASCII (:data:`URL_PATTERN`).
Its secret is generated here, shown once (on create and rotate-secret), and signs every
delivery (:mod:`sessions.webhooks.signing`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from sessions.streams import new_id
from sessions.webhooks.events import ALL_EVENTS, DEFAULT_EVENTS
from sessions.webhooks.signing import new_secret
from storage import Store, WebhookRecord

#: Longest URL taken.
MAX_URL_LENGTH = 2048
#: Longest description taken.
MAX_DESCRIPTION_LENGTH = 500

_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
_PORT = r"6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}"
_REST = r"[\x21\x22\x24-\x7e]"
#: Every URL :func:`check_url` takes, and only those (the API's document states it):
#: http or https, a host name or IPv4 address, a port 1-65535, then a path and query of
#: printable ASCII (percent-encode the rest) without a fragment.
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://(?:{_HOST})(?::(?:{_PORT}))?(?:[/?]{_REST}*)?$"
_URL = re.compile(URL_PATTERN)
#: A description: no control characters.
DESCRIPTION_PATTERN = r"^[^\x00-\x1f\x7f]*$"


class InvalidWebhook(ValueError):
    """A webhook's URL, events or description is not acceptable; the message says why."""


def check_url(url: str) -> str:
    """``url`` if it matches :data:`URL_PATTERN`; raises :class:`InvalidWebhook` saying
    what is wrong otherwise."""
    if not url:
        raise InvalidWebhook("url: must not be empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook(f"url: must be at most {MAX_URL_LENGTH} characters")
    if _URL.fullmatch(url):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise InvalidWebhook("url: must start with http:// or https://")
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in url):
        raise InvalidWebhook(
            "url: must not contain spaces, control or non-ASCII characters (percent-encode them)"
        )
    if "#" in url:
        raise InvalidWebhook("url: must not have a #fragment")
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise InvalidWebhook("url: must not carry a user name or password (verify signatures)")
    if not authority or authority.startswith(":"):
        raise InvalidWebhook("url: must name a host")
    if authority.startswith("["):
        raise InvalidWebhook("url: IPv6 addresses are not taken; use a host name")
    host, _, port = authority.partition(":")
    if not re.fullmatch(_HOST, host):
        raise InvalidWebhook(f"url: {host!r} is not a valid host name or IPv4 address")
    raise InvalidWebhook(f"url: port must be 1-65535, got {port!r}")


def check_events(events: Iterable[str] | None) -> list[str]:
    """The events, in the order given without repeats; ``None``: the default ones."""
    if events is None:
        return list(DEFAULT_EVENTS)
    chosen: list[str] = []
    for event in events:
        if event not in ALL_EVENTS:
            raise InvalidWebhook(f"events: unknown event {event!r}; known: {', '.join(ALL_EVENTS)}")
        if event not in chosen:
            chosen.append(event)
    if not chosen:
        raise InvalidWebhook("events: must name at least one event")
    return chosen


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidWebhook(f"description: must be at most {MAX_DESCRIPTION_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in description):
        raise InvalidWebhook("description: must not contain control characters")
    try:
        description.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidWebhook("description: must be Unicode text (no lone surrogates)") from None
    return description


class Webhooks:
    """Everything that changes a webhook goes through here."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def create(
        self,
        url: str,
        events: Iterable[str] | None = None,
        *,
        description: str = "",
        disabled: bool = False,
    ) -> WebhookRecord:
        """A new webhook with a new secret. Raises :class:`InvalidWebhook`."""
        return await self.store.create_webhook(
            id=new_id(),
            url=check_url(url),
            events=check_events(events),
            description=check_description(description),
            secret=new_secret(),
            now=self.clock(),
            disabled=disabled,
        )

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        description: str | None = None,
        disabled: bool | None = None,
    ) -> WebhookRecord | None:
        """Change the given fields; ``None`` if no such webhook. Raises
        :class:`InvalidWebhook` before anything is changed."""
        return await self.store.update_webhook(
            webhook_id,
            now=self.clock(),
            url=None if url is None else check_url(url),
            events=None if events is None else check_events(events),
            description=None if description is None else check_description(description),
            disabled=disabled,
        )

    async def rotate_secret(self, webhook_id: str) -> WebhookRecord | None:
        """A new secret: deliveries from now on (retries included) are signed with it."""
        return await self.store.update_webhook(webhook_id, now=self.clock(), secret=new_secret())

    async def delete(self, webhook_id: str) -> bool:
        """Remove it, with its deliveries (pending ones are not sent)."""
        return await self.store.delete_webhook(webhook_id)
