"""Streams and their keys: creation, rotation, disabling, deletion, lookup by key.

A stream key is 192 random bits, URL-safe, shown once (returned by :meth:`Streams.create`
and :meth:`Streams.rotate_key`) and stored only as a hash. Disabling or deleting a stream
ends its live session (``key_disabled``) through the ``on_disabled`` callback.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ingest.profiles import Profile, check_profiles, profiles_to_json
from sessions.webhooks.events import WebhookEvent, stream_event
from storage import Store
from storage.models import StreamRecord, hash_key

#: Bytes of randomness in a stream key (192 bits; the requirement is at least 128).
KEY_BYTES = 24
#: Longest stream name accepted.
MAX_NAME_LENGTH = 200
#: What ``str.strip()`` removes besides control characters (the other ``str.isspace()``
#: characters), as a regular-expression class body.
_SPACES = r" \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: A valid name (with :data:`MAX_NAME_LENGTH`), as the OpenAPI document states it: no
#: control characters, and something besides white space. The expression reads the same
#: in Python, ECMAScript and Rust.
NAME_PATTERN = rf"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f{_SPACES}][^\x00-\x1f\x7f]*$"


class InvalidName(ValueError):
    """A stream name that is empty, too long, has control characters or is not text."""


def new_stream_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def new_playback_id() -> str:
    """Random and unguessable, and never derived from the key."""
    return secrets.token_hex(8)


def new_id() -> str:
    return str(uuid.uuid4())


def check_name(name: str, what: str = "stream name") -> str:
    """*name* without surrounding white space, if it is a valid name (see
    :data:`NAME_PATTERN`); raises :class:`InvalidName` with the reason otherwise (about
    *what*: a stream's name, or a target's)."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(f"{what} must be at most {MAX_NAME_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidName(f"{what} must not contain control characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName(f"{what} must be Unicode text (no lone surrogates)") from None
    name = name.strip()
    if not name:
        raise InvalidName(f"{what} must not be empty")
    return name


class Streams:
    """Everything that changes a stream goes through here (API and CLI alike)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        on_disabled: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_disabled = on_disabled

    async def create(
        self,
        name: str,
        *,
        record: bool = False,
        profiles: Iterable[Mapping[str, Any] | Profile] = (),
    ) -> tuple[StreamRecord, str]:
        """A new stream and its key (the only time the key is available). Raises
        :class:`InvalidName` or :class:`~ingest.profiles.ProfileError`."""
        name = check_name(name)
        ladder = profiles_to_json(check_profiles(profiles))
        key = new_stream_key()
        stream_id, now = new_id(), self.clock()
        stream = await self.store.create_stream(
            id=stream_id,
            name=name,
            key_hash=hash_key(key),
            playback_id=new_playback_id(),
            record=record,
            profiles=ladder,
            now=now,
            outbox=[stream_event(WebhookEvent.STREAM_CREATED, stream_id, now)],
        )
        return stream, key

    async def rotate_key(self, stream_id: str) -> tuple[StreamRecord, str] | None:
        """Replace the key; a live publisher keeps going until it reconnects."""
        key = new_stream_key()
        stream = await self.store.update_stream(stream_id, now=self.clock(), key_hash=hash_key(key))
        return None if stream is None else (stream, key)

    async def update(
        self,
        stream_id: str,
        *,
        name: str | None = None,
        record: bool | None = None,
        profiles: Iterable[Mapping[str, Any] | Profile] | None = None,
    ) -> StreamRecord | None:
        """Change the given fields (``profiles=[]`` removes them all); the next session
        of the stream uses its profiles. Raises :class:`InvalidName` or
        :class:`~ingest.profiles.ProfileError` before anything is changed."""
        name = None if name is None else check_name(name)
        ladder = None if profiles is None else profiles_to_json(check_profiles(profiles))
        return await self.store.update_stream(
            stream_id, now=self.clock(), name=name, record=record, profiles=ladder
        )

    async def set_disabled(self, stream_id: str, disabled: bool) -> StreamRecord | None:
        stream = await self.store.update_stream(stream_id, now=self.clock(), disabled=disabled)
        if stream is not None and disabled and self.on_disabled is not None:
            await self.on_disabled(stream_id)
        return stream

    async def delete(self, stream_id: str) -> bool:
        now = self.clock()
        deleted = await self.store.delete_stream(
            stream_id, now=now, outbox=[stream_event(WebhookEvent.STREAM_DELETED, stream_id, now)]
        )
        if deleted and self.on_disabled is not None:
            await self.on_disabled(stream_id)
        return deleted

    async def resolve(self, ref: str) -> StreamRecord | None:
        """A stream by id, or else by name (what the CLI accepts)."""
        return await self.store.get_stream(ref) or await self.store.get_stream_by_name(ref)

    async def authenticate(self, key: str) -> StreamRecord | None:
        """The stream this key publishes to, if any (disabled ones included)."""
        if not key:
            return None
        return await self.store.find_stream_by_key_hash(hash_key(key))
