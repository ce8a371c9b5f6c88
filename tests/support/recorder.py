"""A publish handler that records what the listener hands it, for tests to inspect."""

from __future__ import annotations

import asyncio

from ingest.hooks import Decision, PublishAttempt, PublisherControl, StreamSink
from ingest.rtmp.events import MediaReceived, MetadataReceived


class AllowAll:
    """An authorizer that accepts every publish (for tests of the listener alone)."""

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        return Decision(True)


class Recorder:
    """Gives every accepted publish a sink that keeps all its events."""

    def __init__(self) -> None:
        self.publishes: list[_Sink] = []
        self.started_event = asyncio.Event()

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        sink = _Sink(attempt)
        self.publishes.append(sink)
        self.started_event.set()
        return sink

    async def wait_ended(self, count: int = 1, timeout: float = 20.0) -> list[_Sink]:
        async def all_ended() -> None:
            while len(self.publishes) < count:
                await asyncio.sleep(0.02)
            for sink in self.publishes[:count]:
                await sink.done.wait()

        await asyncio.wait_for(all_ended(), timeout)
        return self.publishes[:count]


class _Sink:
    def __init__(self, attempt: PublishAttempt) -> None:
        self.attempt = attempt
        self.media_events: list[MediaReceived] = []
        self.metadata_events: list[MetadataReceived] = []
        self.end: tuple[str, str, int] | None = None
        self.done = asyncio.Event()

    def media(self, event: MediaReceived) -> None:
        self.media_events.append(event)

    def metadata(self, event: MetadataReceived) -> None:
        self.metadata_events.append(event)

    def ended(self, cause: str, reason: str, bytes_received: int) -> None:
        assert self.end is None, "ended twice"
        self.end = (cause, reason, bytes_received)
        self.done.set()
