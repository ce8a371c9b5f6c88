"""The small interfaces the listener asks of the rest of the server.

The listener decides nothing about keys or sessions itself: it asks a
:class:`PublishAuthorizer` whether a publish may start, and hands an accepted publish's
media to the :class:`StreamSink` that a :class:`PublishHandler` gives it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ingest.rtmp.events import EndCause, MediaReceived, MetadataReceived


@dataclass(frozen=True, slots=True)
class PublishAttempt:
    """A publish request with where it came from. ``key`` must never be logged."""

    connection_id: int
    remote_addr: str
    app: str
    key: str
    query: str
    encoder: str | None
    #: The ``tcUrl`` of the connection's ``connect`` (the server URL, without the key).
    tc_url: str | None = None

    def __repr__(self) -> str:
        return (
            f"PublishAttempt(connection_id={self.connection_id}, "
            f"remote_addr={self.remote_addr!r}, app={self.app!r}, key=<redacted>)"
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """An authorizer's answer; ``code`` is the status sent to a refused publisher.

    An accepted publish names the stream it publishes to, when the authorizer knows it
    (two keys of one stream, before and after a rotation, are still one stream).
    """

    allowed: bool
    code: str = "NetStream.Publish.BadName"
    reason: str = ""
    stream_id: str | None = None
    stream_name: str | None = None
    #: The stream's playback id (where its HLS goes) and whether it records.
    playback_id: str | None = None
    record: bool = False
    #: The stream's rendition profiles in the compact form of :mod:`ingest.profiles`
    #: (``""``: it sets none, and the server's default ladder applies).
    profiles: str = ""
    #: Called when an accepted publish never starts (its connection closed while it was
    #: being authorized), for an authorizer that reserved the stream for it.
    release: Callable[[], None] | None = field(default=None, compare=False, repr=False)


class PublishAuthorizer(Protocol):
    async def authorize(self, attempt: PublishAttempt) -> Decision: ...


class StreamSink(Protocol):
    """Receives one accepted publish's media, then exactly one :meth:`ended` call."""

    def media(self, event: MediaReceived) -> None: ...

    def metadata(self, event: MetadataReceived) -> None: ...

    def ended(self, cause: EndCause, reason: str, bytes_received: int) -> None: ...


class PublisherControl(Protocol):
    """What a handler may know of and do to a live publisher's connection."""

    @property
    def bytes_received(self) -> int:
        """Bytes read from the publisher's socket so far."""
        ...

    def close(self, reason: str) -> None: ...


class PublishHandler(Protocol):
    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink: ...
