"""A source for the forwarding engine: a real RTMP listener whose accepted publishes are
recorded (every message, as :class:`~tests.support.recorder.Recorder` keeps them) and fed
to a :class:`~ingest.multistream.Multistream`, started when the publish starts and closed
when it ends: the per-session wiring, for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ingest.hooks import Decision, PublishAttempt, PublisherControl, StreamSink
from ingest.multistream import ForwardSettings, Multistream, Target, TargetEvent, TargetStats
from ingest.rtmp.events import MediaReceived, MetadataReceived
from tests.support.recorder import Recorder, _Sink


class Events:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[TargetEvent] = []

    def target_event(self, event: TargetEvent) -> None:
        self.events.append(event)

    def kinds(self, target_id: str) -> list[str]:
        return [e.kind.value for e in self.events if e.target.id == target_id]


class Forwarding(Recorder):
    """Records each publish and forwards it to ``targets``."""

    def __init__(self, targets: Sequence[Target], settings: ForwardSettings) -> None:
        super().__init__()
        self.targets = list(targets)
        self.settings = settings
        self.observer = Events()
        self.multistreams: list[Multistream] = []
        #: Each publish's final counters, once it ended.
        self.final: list[list[TargetStats]] = []
        self.closed = asyncio.Event()
        self.closing: list[asyncio.Task[None]] = []

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        recording = super().started(attempt, control, decision)
        assert isinstance(recording, _Sink)
        multistream = Multistream(self.targets, self.settings, self.observer)
        multistream.start()
        self.multistreams.append(multistream)
        return _Tee(recording, multistream, self)


class _Tee:
    def __init__(self, recording: _Sink, multistream: Multistream, owner: Forwarding) -> None:
        self.recording = recording
        self.multistream = multistream
        self.owner = owner

    def media(self, event: MediaReceived) -> None:
        self.recording.media(event)
        self.multistream.media(event)

    def metadata(self, event: MetadataReceived) -> None:
        self.recording.metadata(event)
        self.multistream.metadata(event)

    def ended(self, cause: str, reason: str, bytes_received: int) -> None:
        self.recording.ended(cause, reason, bytes_received)

        async def close() -> None:
            self.owner.final.append(await self.multistream.close())
            self.owner.closed.set()

        self.owner.closing.append(asyncio.ensure_future(close()))
