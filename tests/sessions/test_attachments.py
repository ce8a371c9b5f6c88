"""Attachments (:mod:`sessions.attachments`): what follows a publish beside its segmenter
sees every message, the session's opening with its folder, the segmenter's placed media
through a tap, every refresh, and its end before the end is written; one that raises is
dropped without touching the session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.media import make_flv, read_flv_tags
from ingest.rtmp.events import MediaReceived, MetadataReceived
from sessions.attachments import Attachment, MediaTaps, PublishInfo
from sessions.hls import MediaTap
from storage.models import SessionRecord
from tests.support.rtmp_client import SocketPublisher
from tests.support.stack import Stack, start_stack


@dataclass
class Tap:
    configs: int = 0
    frames: int = 0
    cuts: list[int] = field(default_factory=list)
    flushed: int = 0

    def config(self, video: bool, codec: str, config: bytes, tag: bytes) -> None:
        self.configs += 1

    def frame(
        self,
        video: bool,
        dts: int,
        pts: int,
        data: bytes,
        keyframe: bool,
        arrival: float,
        tag: bytes,
    ) -> None:
        self.frames += 1

    def cut(self, sequence: int, dts: int, discontinuity: bool, arrival: float) -> None:
        self.cuts.append(sequence)

    def flush(self) -> None:
        self.flushed += 1


@dataclass
class Recorder:
    """Keeps what it was told, in order."""

    stream_id: str | None
    steps: list[str] = field(default_factory=list)
    media_count: int = 0
    media_bytes: int = 0
    record: SessionRecord | None = None
    folder: Path | None = None
    status_at_finish: str | None = None
    finished_with: list[SessionRecord | None] = field(default_factory=list)
    samples: int = 0
    tap: Tap = field(default_factory=Tap)
    fail_on: str | None = None

    def _step(self, name: str) -> None:
        if not self.steps or self.steps[-1] != name:
            self.steps.append(name)
        if name == self.fail_on:
            raise RuntimeError(f"{name} failed on purpose")

    def metadata(self, event: MetadataReceived) -> None:
        self._step("metadata")

    def media(self, event: MediaReceived) -> None:
        self.media_count += 1
        self.media_bytes += len(event.payload)
        self._step("media")

    def opened(self, record: SessionRecord, folder: Path | None) -> MediaTap | None:
        self.record, self.folder = record, folder
        self._step("opened")
        return self.tap

    def refresh(self, record: SessionRecord, now: float, sample: bool) -> None:
        self.samples += sample
        self._step("refresh")

    async def finish(self, record: SessionRecord | None) -> None:
        self.finished_with.append(record)
        self.status_at_finish = record.status if record is not None else None
        self._step("finish")


@pytest.fixture
async def made(tmp_path: Path) -> AsyncIterator[tuple[Stack, list[Recorder]]]:
    made: list[Recorder] = []
    fail = {"failing": "media"}

    def factory(publish: PublishInfo) -> Attachment | None:
        assert publish.decision.allowed
        if publish.decision.stream_name == "none":
            return None
        recorder = Recorder(
            publish.decision.stream_id, fail_on=fail.get(publish.decision.stream_name or "")
        )
        made.append(recorder)
        return recorder

    stack = await start_stack(tmp_path, hls=True, attachments=[factory])
    yield stack, made
    await stack.close()


async def _publish(stack: Stack, key: str, clip: Path, *, media: bool = True) -> int:
    """Publish ``clip``'s tags (or none) with the core's client role, then unpublish;
    returns the media bytes sent."""
    pub = await SocketPublisher.open(stack.rtmp.port, name=key)
    await pub.publish()
    sent = 0
    for tag in read_flv_tags(clip) if media else []:
        if tag.tag_type == 18:
            pub.conn.send_metadata({"encoder": "test"})
        elif tag.tag_type == 9:
            pub.conn.send_video(tag.timestamp, tag.body)
        elif tag.tag_type == 8:
            pub.conn.send_audio(tag.timestamp, tag.body)
        else:
            continue
        sent += len(tag.body) if tag.tag_type != 18 else 0
    pub.conn.unpublish()
    await pub.flush()
    pub.close()
    return sent


async def _ended(stack: Stack, count: int) -> list[SessionRecord]:
    async with asyncio.timeout(30):
        while True:
            rows, _ = await stack.store.list_sessions(limit=100)
            if sum(r.status == "ended" for r in rows) >= count:
                return rows
            await asyncio.sleep(0.05)


async def test_an_attachment_follows_its_publish_from_start_to_end(
    made: tuple[Stack, list[Recorder]], tmp_path: Path
) -> None:
    stack, recorders = made
    stream, key = await stack.streams.create("cam")
    clip = make_flv(tmp_path / "clip.flv", seconds=3, gop=30)
    sent = await _publish(stack, key, clip)
    (session,) = await _ended(stack, 1)
    (recorder,) = recorders
    assert recorder.stream_id == stream.id
    assert recorder.media_bytes == sent == session.media_bytes
    assert recorder.record is not None and recorder.record.id == session.id
    assert recorder.folder == stack.media_root / stream.playback_id / session.id
    # The order the module promises; refreshes come between the media and the end.
    assert recorder.steps[0] == "metadata"
    assert recorder.steps[1:3] == ["opened", "media"]
    assert recorder.steps[-1] == "finish"
    assert recorder.finished_with == [recorder.record]
    assert recorder.status_at_finish == "live", "finished before the end is written"
    # The segmenter showed it the media as placed, and its cuts, then flushed it.
    assert recorder.tap.configs >= 2 and recorder.tap.frames > 0
    assert recorder.tap.cuts == list(range(session.source_segments))
    assert recorder.tap.flushed == 1


async def test_no_media_means_a_finish_without_a_session_and_none_is_no_attachment(
    made: tuple[Stack, list[Recorder]], tmp_path: Path
) -> None:
    stack, recorders = made
    _, key = await stack.streams.create("silent")
    _, other = await stack.streams.create("none")
    clip = make_flv(tmp_path / "clip.flv", seconds=1)
    await _publish(stack, key, clip, media=False)
    await _publish(stack, other, clip)
    await _ended(stack, 1)
    async with asyncio.timeout(10):
        while not recorders or not recorders[0].finished_with:
            await asyncio.sleep(0.02)
    (recorder,) = recorders
    assert recorder.finished_with == [None]
    assert recorder.steps == ["finish"]


async def test_an_attachment_that_raises_is_dropped_and_the_session_is_whole(
    made: tuple[Stack, list[Recorder]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack, recorders = made
    _, key = await stack.streams.create("failing")
    clip = make_flv(tmp_path / "clip.flv", seconds=2, gop=30)
    sent = await _publish(stack, key, clip)
    (session,) = await _ended(stack, 1)
    (recorder,) = recorders
    assert recorder.media_count == 1, "dropped after its first failure"
    assert recorder.finished_with == [], "a dropped attachment is not finished"
    assert session.media_bytes == sent and session.end_reason == "unpublished"
    assert session.source_segments > 0
    (failed,) = [r for r in caplog.records if r.getMessage() == "attachment_failed"]
    assert failed.__dict__["fields"]["step"] == "media"
    assert failed.__dict__["fields"]["session"] == session.id


def test_taps_as_one() -> None:
    a, b = Tap(), Tap()
    both = MediaTaps([a, b])
    both.config(True, "h264", b"c", b"t")
    both.frame(True, 0, 0, b"f", True, 0.0, b"t")
    both.cut(0, 0, False, 0.0)
    both.flush()
    assert a == b == Tap(configs=1, frames=1, cuts=[0], flushed=1)
