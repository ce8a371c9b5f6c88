"""Sessions forwarded to their streams' multistream targets (:mod:`ingest.server.forwarding`),
through the server's own stack: a real publish into our listener, nginx-rtmp (``record
all``) and a second rtmp-ingest listener as targets; the session's ``multistream``
ledger, its events and its ``multistream_failed`` issue."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.media import FlvTag, make_flv, read_flv_tags
from ingest.config import MultistreamConfig
from ingest.multistream import FAILED_AFTER
from ingest.rtmp.events import MediaReceived, MetadataReceived
from ingest.server.forwarding import Forwarders
from ingest.server.looplag import LoopLagMonitor
from sessions.attachments import Attachment, PublishInfo
from sessions.hls import MediaTap
from storage.models import EventRecord, SessionRecord
from tests.support.events import events
from tests.support.listener import Start, listeners
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.nginx import NginxRtmp
from tests.support.recorder import Recorder
from tests.support.rtmp_client import SocketPublisher
from tests.support.stack import Stack, start_stack

start = pytest.fixture(listeners)

FAST = MultistreamConfig(retry_min=0.2, retry_max=1.0, connect_timeout=5.0, stall_timeout=2.0)

Tag = tuple[int, int, bytes]


@dataclass
class Received:
    """An attachment that keeps every media message the session received, in order."""

    tags: list[Tag] = field(default_factory=list)

    def metadata(self, event: MetadataReceived) -> None:
        pass

    def media(self, event: MediaReceived) -> None:
        self.tags.append((event.message_type, event.timestamp, event.payload))

    def opened(self, record: SessionRecord, folder: Path | None) -> MediaTap | None:
        return None

    def refresh(self, record: SessionRecord, now: float, sample: bool) -> None:
        pass

    async def finish(self, record: SessionRecord | None) -> None:
        pass


@dataclass
class Source:
    stack: Stack
    received: dict[str, Received]


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[NginxRtmp]:
    server = NginxRtmp(tmp_path / "nginx")
    await server.start()
    yield server
    server.kill()
    await server.stop()


async def _source(
    tmp_path: Path, settings: MultistreamConfig = FAST, *, hls: bool = False
) -> Source:
    received: dict[str, Received] = {}

    def factory(publish: PublishInfo) -> Attachment | None:
        received[publish.decision.stream_id or ""] = keeper = Received()
        return keeper

    stack = await start_stack(
        tmp_path / "source", attachments=[factory], multistream=settings, hls=hls
    )
    return Source(stack, received)


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[Source]:
    made = await _source(tmp_path)
    yield made
    await made.stack.close()


async def _ended(stack: Stack, stream_id: str) -> SessionRecord:
    async with asyncio.timeout(40):
        while True:
            rows, _ = await stack.store.list_sessions(limit=10, stream_id=stream_id)
            if rows and rows[0].status == "ended":
                await stack.manager.writes.join()
                return rows[0]
            await asyncio.sleep(0.05)


async def _multistream_events(stack: Stack, session_id: str) -> list[EventRecord]:
    await stack.manager.writes.join()
    rows = [e for e in await events(stack.store, limit=1000) if e.session_id == session_id]
    return [e for e in reversed(rows) if e.kind.startswith("multistream.")]


def _kinds(rows: list[EventRecord], target_id: str) -> list[str]:
    return [e.kind for e in rows if e.reason is not None and f"({target_id})" in e.reason]


def _nginx_tags(path: Path) -> list[FlvTag]:
    """The audio/video tags nginx recorded, less the copy of the AAC sequence header its
    record module writes itself before the first audio tag."""
    tags: list[FlvTag] = []
    for tag in read_flv_tags(path):
        if tag.tag_type not in (8, 9):
            continue
        if tags and tag == tags[-1] and tag.tag_type == 8 and tag.body[1:2] == b"\x00":
            continue
        tags.append(tag)
    return tags


def _tags(recorder: Recorder, key: str) -> list[Tag]:
    (sink,) = [s for s in recorder.publishes if s.attempt.key == key]
    return [(e.message_type, e.timestamp, e.payload) for e in sink.media_events]


@pytest.mark.slow
async def test_a_publish_is_forwarded_tag_for_tag_to_nginx_and_another_ingest(
    tmp_path: Path,
    source: Source,
    start: Start,
    nginx: NginxRtmp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stack = source.stack
    ours, recorder = await start()
    targets = stack.store
    stream, key = await stack.streams.create("cam")
    secret = "sk-target-0123456789"
    made = [
        await targets.create_target(
            id="t-nginx", stream_id=stream.id, name="nginx", disabled=False, now=1.0,
            url=f"{nginx.url}/{secret}",
        ),
        await targets.create_target(
            id="t-ours", stream_id=stream.id, name="ours", disabled=False, now=2.0,
            url=f"rtmp://127.0.0.1:{ours.port}/live/{secret}-ours",
        ),
        await targets.create_target(
            id="t-off", stream_id=stream.id, name="off", disabled=True, now=3.0,
            url=f"rtmp://127.0.0.1:{ours.port}/live/disabled",
        ),
    ]  # fmt: skip
    assert all(made)
    await stack.store.create_webhook(
        id="wh-ms",
        url="http://127.0.0.1:9/hook",
        events=["multistream.connected", "multistream.disconnected"],
        description="",
        secret="w" * 32,
        now=4.0,
    )
    clip = make_flv(tmp_path / "clip.flv", seconds=4, size=(320, 240))
    assert await publish_with_ffmpeg(clip, stack.url(key)) == 0
    session = await _ended(stack, stream.id)
    sent = source.received[stream.id].tags
    assert len(sent) > 200
    media = sum(len(body) for _, _, body in sent)
    assert session.media_bytes == media

    # The other rtmp-ingest got every tag, byte for byte, with the same timestamps; the
    # disabled target got nothing.
    await recorder.wait_ended()
    assert [s.attempt.key for s in recorder.publishes] == [f"{secret}-ours"]
    assert _tags(recorder, f"{secret}-ours") == sent
    # nginx recorded every tag.
    await nginx.stop()
    recorded = _nginx_tags(nginx.record(secret))
    assert [(t.tag_type, t.body) for t in recorded] == [(kind, body) for kind, _, body in sent]
    first = sent[0][1]
    assert [t.timestamp for t in recorded] == [ts - first for _, ts, _ in sent]

    # The session's ledger: one entry per enabled target, in the targets' order.
    assert [e["target_id"] for e in session.multistream] == ["t-nginx", "t-ours"]
    for entry in session.multistream:
        assert entry["status"] == "ended"
        assert entry["bytes_sent"] > media
        assert (entry["reconnects"], entry["skipped_bytes"], entry["last_error"]) == (0, 0, None)
        assert 0 < entry["connected_seconds"] < 60
    assert session.is_healthy and session.issues == []
    rows = await _multistream_events(stack, session.id)
    for target_id in ("t-nginx", "t-ours"):
        assert _kinds(rows, target_id) == ["multistream.connected", "multistream.disconnected"]
    assert {e.stream_id for e in rows} == {stream.id}
    # The same events went to the webhooks' outbox, in the same writes.
    deliveries, _ = await stack.store.list_deliveries("wh-ms")
    assert sorted(d.event for d in deliveries) == sorted(e.kind for e in rows)
    assert {d.session_id for d in deliveries} == {session.id}
    # The targets' keys are in no log line of ours and no event (the database driver's
    # debug lines show the SQL it runs: it stays at info unless named in debug_loggers).
    lines = [
        f"{r.getMessage()} {r.__dict__.get('fields')} {r.exc_text}"
        for r in caplog.records
        if r.name != "aiosqlite"
    ]
    assert [line for line in lines if "multistream_connected" in line]
    assert not [text for text in lines + [str(e) for e in rows] if secret in text]


async def _publish_tags(stack: Stack, key: str, clip: Path) -> None:
    """Publish ``clip``'s tags with the core's client role, then unpublish."""
    pub = await SocketPublisher.open(stack.rtmp.port, name=key)
    await pub.publish()
    for tag in read_flv_tags(clip):
        if tag.tag_type == 9:
            pub.conn.send_video(tag.timestamp, tag.body)
        elif tag.tag_type == 8:
            pub.conn.send_audio(tag.timestamp, tag.body)
    pub.conn.unpublish()
    await pub.flush()
    pub.close()


async def test_a_session_without_enabled_targets_has_an_empty_ledger(
    tmp_path: Path, source: Source
) -> None:
    stack = source.stack
    bare, bare_key = await stack.streams.create("bare")
    off, off_key = await stack.streams.create("off")
    await stack.store.create_target(
        id="t1", stream_id=off.id, name="off", url="rtmp://127.0.0.1:9/live/k",
        disabled=True, now=1.0,
    )  # fmt: skip
    clip = make_flv(tmp_path / "clip.flv", seconds=1)
    await _publish_tags(stack, bare_key, clip)
    await _publish_tags(stack, off_key, clip)
    for stream in (bare, off):
        session = await _ended(stack, stream.id)
        assert session.multistream == [] and session.is_healthy
        assert await _multistream_events(stack, session.id) == []


async def _connected(stack: Stack, target_id: str, count: int = 1) -> str:
    """Wait until ``target_id`` went live ``count`` times in the newest session; its id."""
    async with asyncio.timeout(30):
        while True:
            rows, _ = await stack.store.list_sessions(limit=1)
            if rows:
                kinds = _kinds(await _multistream_events(stack, rows[0].id), target_id)
                if kinds.count("multistream.connected") >= count:
                    return rows[0].id
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_target_killed_and_restarted_is_reconnected_and_counted(
    tmp_path: Path, source: Source, nginx: NginxRtmp
) -> None:
    stack = source.stack
    stream, key = await stack.streams.create("cam")
    await stack.store.create_target(
        id="t-nginx", stream_id=stream.id, name="nginx", url=f"{nginx.url}/again",
        disabled=False, now=1.0,
    )  # fmt: skip
    clip = make_flv(tmp_path / "clip.flv", seconds=6, size=(320, 240), gop=15)
    publisher = await start_ffmpeg(clip, stack.url(key), realtime=True)
    await _connected(stack, "t-nginx")
    await asyncio.sleep(1.0)
    nginx.kill()
    await nginx.stop()  # reaped
    await asyncio.sleep(0.5)
    await nginx.start()
    session_id = await _connected(stack, "t-nginx", 2)
    assert await publisher.wait() == 0
    session = await _ended(stack, stream.id)
    assert session.id == session_id
    (entry,) = session.multistream
    assert entry["reconnects"] == 1 and entry["skipped_bytes"] > 0
    assert entry["status"] == "ended" and entry["last_error"]
    assert 0 < entry["connected_seconds"] < 6
    kinds = _kinds(await _multistream_events(stack, session.id), "t-nginx")
    assert kinds[:2] == ["multistream.connected", "multistream.disconnected"]
    assert kinds[-2:] == ["multistream.connected", "multistream.disconnected"]
    assert set(kinds[2:-2]) <= {"multistream.error"}

    # What nginx recorded after the restart: the headers, then the source from a keyframe.
    await nginx.settled("again")
    await nginx.stop()
    sent = [(kind, body) for kind, _, body in source.received[stream.id].tags]
    recorded = [(t.tag_type, t.body) for t in _nginx_tags(nginx.record("again"))]
    configs = [(k, body) for k, body in sent if body[1:2] == b"\x00"][:2]
    assert recorded[:2] == configs
    assert recorded[2][0] == 9 and recorded[2][1][0] >> 4 == 1  # a keyframe
    at = sent.index(recorded[2])
    assert recorded[2:] == sent[at:]


@pytest.mark.slow
async def test_targets_that_take_nothing_leave_ingest_and_the_other_target_alone(
    tmp_path: Path, start: Start, nginx: NginxRtmp
) -> None:
    """nginx, stopped (SIGSTOP) once live, holds its connection and reads nothing (its
    backlog fills, media is skipped, counted); a socket that accepts TCP and never reads
    (every attempt times out: the target fails, and the session says so); a third target
    gets every tag. The event loop's lag and the third target's tag count are printed."""
    settings = MultistreamConfig(
        max_buffer=512 * 1024, connect_timeout=1.0, retry_min=0.2, retry_max=0.5,
        stall_timeout=60.0,
    )  # fmt: skip
    made = await _source(tmp_path, settings)
    stack = made.stack
    ours, recorder = await start()
    try:
        with socket.socket() as hole:
            hole.bind(("127.0.0.1", 0))
            hole.listen(8)  # the kernel accepts; nobody reads
            stream, key = await stack.streams.create("cam")
            urls = {
                "stalled": f"{nginx.url}/stalled",
                "hole": f"rtmp://127.0.0.1:{hole.getsockname()[1]}/live/never",
                "fine": f"rtmp://127.0.0.1:{ours.port}/live/fine",
            }
            for at, (name, url) in enumerate(urls.items()):
                await stack.store.create_target(
                    id=name, stream_id=stream.id, name=name, url=url, disabled=False, now=at
                )
            clip = make_flv(tmp_path / "clip.flv", seconds=8, size=(640, 360), bitrate=3_000_000)
            lag = LoopLagMonitor()
            lag.start()
            started = time.monotonic()
            # The clip over and over at 4x its pace, until the hole has failed.
            publisher = await asyncio.create_subprocess_exec(
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-readrate", "4",
                "-stream_loop", "-1", "-i", str(clip), "-c", "copy", "-f", "flv",
                stack.url(key),
            )  # fmt: skip
            session_id = await _connected(stack, "stalled")
            nginx.pause()
            async with asyncio.timeout(30):
                while (
                    _kinds(await _multistream_events(stack, session_id), "hole").count(
                        "multistream.error"
                    )
                    < FAILED_AFTER
                    or time.monotonic() - started < 4
                ):
                    await asyncio.sleep(0.1)
            publisher.send_signal(signal.SIGINT)  # ffmpeg ends its publish and exits
            await publisher.wait()
            session = await _ended(stack, stream.id)
            snapshot = lag.snapshot()
            lag.stop()
        sent = made.received[stream.id].tags
        await recorder.wait_ended()
        got = _tags(recorder, "fine")
        media = sum(len(body) for _, _, body in sent)
        entries = {e["target_id"]: e for e in session.multistream}
        print(
            f"\nloop lag (ms) with two targets taking nothing: {snapshot};"
            f" tags: {len(sent)} received, {len(got)} forwarded to the third target;"
            f" skipped for the stopped one: {entries['stalled']['skipped_bytes']} of"
            f" {media} media bytes"
        )
        assert got == sent
        assert list(entries) == ["stalled", "hole", "fine"]
        fine, stalled, dead = entries["fine"], entries["stalled"], entries["hole"]
        assert (fine["skipped_bytes"], fine["reconnects"], fine["last_error"]) == (0, 0, None)
        assert stalled["skipped_bytes"] > 0 and stalled["reconnects"] == 0
        headers = sum(len(body) for _, _, body in sent if body[1:2] == b"\x00")
        assert dead["skipped_bytes"] == media - headers
        assert dead["connected_seconds"] == 0 and dead["status"] == "ended"
        assert dead["last_error"].startswith("timed out")
        # The target that could not be kept connected is the session's issue.
        assert not session.is_healthy
        (issue,) = [i for i in session.issues if i["code"] == "multistream_failed"]
        assert "hole" in issue["message"]
        kinds = _kinds(await _multistream_events(stack, session.id), "hole")
        assert set(kinds) == {"multistream.error"}
    finally:
        nginx.resume()
        await stack.close()


@pytest.mark.slow
async def test_targets_enabled_and_disabled_while_live_are_followed(
    tmp_path: Path, source: Source, start: Start
) -> None:
    """A target enabled while the session forwards joins at a keyframe, after the stream's
    headers; one disabled ends there, its entry kept."""
    stack = source.stack
    (forwarders,) = [f for f in stack.manager.attachment_factories if isinstance(f, Forwarders)]
    forwarders.recheck_interval = 0.2
    ours, recorder = await start()
    stream, key = await stack.streams.create("cam")
    for at, name in enumerate(("early", "late")):
        await stack.store.create_target(
            id=name, stream_id=stream.id, name=name, disabled=name == "late", now=at,
            url=f"rtmp://127.0.0.1:{ours.port}/live/{name}",
        )  # fmt: skip
    clip = make_flv(tmp_path / "clip.flv", seconds=5, size=(160, 120), gop=15)
    publisher = await start_ffmpeg(clip, stack.url(key), realtime=True)
    session_id = await _connected(stack, "early")
    await asyncio.sleep(1.0)
    await stack.store.update_target(stream.id, "late", now=5.0, disabled=False)
    await _connected(stack, "late")
    await stack.store.update_target(stream.id, "early", now=6.0, disabled=True)
    async with asyncio.timeout(10):
        while "multistream.disconnected" not in _kinds(
            await _multistream_events(stack, session_id), "early"
        ):
            await asyncio.sleep(0.05)
    assert await publisher.wait() == 0
    session = await _ended(stack, stream.id)
    await recorder.wait_ended(2)
    sent = source.received[stream.id].tags
    early, late = _tags(recorder, "early"), _tags(recorder, "late")
    assert 0 < len(early) < len(sent) and early == sent[: len(early)]
    configs = [tag for tag in sent if tag[2][1:2] == b"\x00"]
    assert late[:2] == configs
    assert late[2][0] == 9 and late[2][2][0] >> 4 == 1  # a keyframe
    assert late[2:] == sent[sent.index(late[2]) :]
    entries = {e["target_id"]: e for e in session.multistream}
    assert list(entries) == ["early", "late"]
    assert {e["status"] for e in entries.values()} == {"ended"}
    assert entries["late"]["skipped_bytes"] > 0 and entries["early"]["connected_seconds"] > 0


async def test_a_target_that_never_connects_is_an_issue_beside_the_segmenters(
    tmp_path: Path,
) -> None:
    """A refusing target fails (3 attempts in a row): the session gets
    ``multistream_failed`` and keeps it to its end, beside the segmenter's own issues."""
    settings = MultistreamConfig(retry_min=0.05, retry_max=0.1, connect_timeout=1.0)
    made = await _source(tmp_path, settings, hls=True)
    stack = made.stack
    try:
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        stream, key = await stack.streams.create("cam")
        await stack.store.create_target(
            id="gone", stream_id=stream.id, name="gone", disabled=False, now=1.0,
            url=f"rtmp://127.0.0.1:{port}/live/k",
        )  # fmt: skip
        clip = make_flv(tmp_path / "clip.flv", seconds=2, size=(160, 120))
        tags = [t for t in read_flv_tags(clip) if t.tag_type in (8, 9)]
        pub = await SocketPublisher.open(stack.rtmp.port, name=key)
        await pub.publish()
        for tag in tags:
            send = pub.conn.send_video if tag.tag_type == 9 else pub.conn.send_audio
            send(tag.timestamp, tag.body)
        pub.conn.send_video(tags[-1].timestamp + 10, b"\x17")  # malformed: the segmenter's
        await pub.flush()
        async with asyncio.timeout(20):
            while not (live := (await stack.store.list_sessions(limit=1))[0]):
                await asyncio.sleep(0.05)
            while (
                _kinds(await _multistream_events(stack, live[0].id), "gone").count(
                    "multistream.error"
                )
                < FAILED_AFTER
            ):
                await asyncio.sleep(0.05)
        pub.conn.unpublish()
        await pub.flush()
        pub.close()
        session = await _ended(stack, stream.id)
        codes = [issue["code"] for issue in session.issues]
        assert "multistream_failed" in codes and "malformed_message" in codes
        assert not session.is_healthy
        (entry,) = session.multistream
        assert entry["status"] == "ended" and entry["last_error"] == "connection refused"
    finally:
        await stack.close()
