"""A publish handler that records what the listener hands it, for tests to inspect (alone,
or behind the owner of the live streams)."""

from __future__ import annotations

import asyncio

from ingest.hooks import Decision, PublishAttempt, PublishAuthorizer, PublisherControl, StreamSink
from ingest.rtmp.events import EndCause, MediaReceived, MetadataReceived
from sessions.owner import DuplicatePolicy, End, HolderKey, StreamOwner
from storage.models import EndReason


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

    def ended(self, cause: EndCause, reason: str, bytes_received: int) -> None:
        assert self.end is None, "ended twice"
        self.end = (cause, reason, bytes_received)
        self.done.set()


class _Connection:
    """A recorded publish as the owner acts on it."""

    def __init__(self, connection: int) -> None:
        self.key = HolderKey(0, connection)
        self.control: PublisherControl | None = None

    def end(self, reason: EndReason, why: str) -> None:
        assert self.control is not None
        self.control.close(why)

    def refresh(self, now: float) -> None:
        pass


class OwnedRecorder(Recorder):
    """A :class:`Recorder` behind a :class:`~sessions.owner.StreamOwner`, which decides who
    publishes (its duplicate-publish policy) and ends the replaced: for tests of the
    listener with the owner, without sessions."""

    def __init__(self, authorizer: PublishAuthorizer, policy: DuplicatePolicy) -> None:
        super().__init__()
        self.owner = StreamOwner(authorizer, policy=policy)
        self._claimed: dict[int, _Connection] = {}
        self._ending: set[asyncio.Task[End]] = set()

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        holder = _Connection(attempt.connection_id)
        decision = await self.owner.claim(attempt, holder)
        if decision.allowed:
            self._claimed[attempt.connection_id] = holder
        return decision

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        holder = self._claimed.pop(attempt.connection_id)
        holder.control = control
        sink = super().started(attempt, control, decision)
        recorded = sink.ended

        def ended(cause: EndCause, reason: str, bytes_received: int) -> None:
            recorded(cause, reason, bytes_received)
            task = asyncio.ensure_future(self.owner.disconnected(holder, cause, reason))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

        sink.ended = ended  # type: ignore[method-assign]
        return sink
