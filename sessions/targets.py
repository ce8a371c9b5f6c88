"""A stream's multistream targets: where its sessions are forwarded (name, URL with the
target's stream key, enabled or not), created, changed and deleted over the API.

The URL is checked when it is given (``rtmp://`` or ``rtmps://``, a host, an application
and a key: :func:`ingest.rtmp.url.parse_rtmp_url`) and is shown masked from then on:
nothing here returns or logs the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ingest.rtmp.url import mask_url, parse_rtmp_url
from sessions.streams import InvalidName, check_name, new_id
from storage import Store
from storage.models import TargetRecord


class InvalidTarget(ValueError):
    """A target's name or URL is not acceptable; the message says why (never the key)."""


def masked_url(target: TargetRecord) -> str:
    """The target's URL as it may be shown: its key replaced."""
    return mask_url(target.url)


def _url(url: str) -> str:
    try:
        return parse_rtmp_url(url).full
    except ValueError as exc:
        raise InvalidTarget(f"url: {exc}") from None


def _name(name: str) -> str:
    try:
        return check_name(name, "target name")
    except InvalidName as exc:
        raise InvalidTarget(f"name: {exc}") from None


class Targets:
    """Everything that changes a target goes through here."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def create(
        self, stream_id: str, name: str, url: str, *, disabled: bool = False
    ) -> TargetRecord | None:
        """A new target of the stream (``None`` if there is no such stream). Raises
        :class:`InvalidTarget`."""
        return await self.store.create_target(
            id=new_id(),
            stream_id=stream_id,
            name=_name(name),
            url=_url(url),
            disabled=disabled,
            now=self.clock(),
        )

    async def update(
        self,
        stream_id: str,
        target_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        disabled: bool | None = None,
    ) -> TargetRecord | None:
        """Change the given fields; ``None`` if the stream has no such target. Raises
        :class:`InvalidTarget`."""
        return await self.store.update_target(
            stream_id,
            target_id,
            now=self.clock(),
            name=None if name is None else _name(name),
            url=None if url is None else _url(url),
            disabled=disabled,
        )

    async def delete(self, stream_id: str, target_id: str) -> bool:
        return await self.store.delete_target(stream_id, target_id)
