"""The reconnect window over real sockets: a publisher whose connection drops and that
comes back on the same key within ``[sessions] reconnect_window`` continues its session.

These publish with the core's client role (byte-exact, no media files); the tests with
the ``ffmpeg`` command line, HLS and recordings are in test_reconnect_media.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.models import SessionRecord
from tests.support.events import events
from tests.support.rtmp_client import SocketPublisher
from tests.support.stack import Stack, start_stack

#: A small AVC keyframe message body (the segmenter is off here: only counted).
FRAME = b"\x17\x01\x00\x00\x00" + bytes(50)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = await start_stack(tmp_path, idle_timeout=1.0, reconnect_window=3.0)
    yield s
    await s.close()


async def _publish(stack: Stack, key: str, frames: int, start: int = 0) -> SocketPublisher:
    pub = await SocketPublisher.open(stack.rtmp.port, name=key)
    await pub.publish()
    for n in range(frames):
        pub.conn.send_video(start + n * 40, FRAME)
    await pub.flush()
    return pub


async def _status(stack: Stack, stream_id: str, status: str) -> SessionRecord:
    """The stream's open session, once it has ``status``."""
    async with asyncio.timeout(15):
        while True:
            record = stack.owner.live_session(stream_id)
            if record is not None and record.status == status:
                return record
            await asyncio.sleep(0.02)


async def _ended(stack: Stack, count: int) -> list[SessionRecord]:
    async with asyncio.timeout(20):
        while True:
            rows, _ = await stack.store.list_sessions(limit=100)
            if len([r for r in rows if r.status == "ended"]) >= count:
                return sorted(rows, key=lambda r: r.created_at)
            await asyncio.sleep(0.05)


async def test_a_dropped_publisher_that_comes_back_continues_its_session(stack: Stack) -> None:
    stream, key = await stack.streams.create("cam")
    first = await _publish(stack, key, 5)
    live = await _status(stack, stream.id, "live")
    await asyncio.sleep(0.3)
    first.abort()  # a reset: no unpublish
    waiting = await _status(stack, stream.id, "reconnecting")
    assert waiting.id == live.id and waiting.ingest_rate == 0
    stored = await stack.store.get_session(live.id)
    assert stored is not None and stored.status == "reconnecting"
    listed, _ = await stack.store.list_sessions(status="reconnecting")
    assert [r.id for r in listed] == [live.id]
    left_at = waiting.last_seen
    await asyncio.sleep(0.5)
    second = await _publish(stack, key, 3, start=10_000)
    resumed = await _status(stack, stream.id, "live")
    assert resumed.id == live.id
    second.conn.unpublish()
    await second.flush()
    (session,) = await _ended(stack, 1)
    second.close()
    assert session.id == live.id and session.end_reason == "unpublished"
    assert session.reconnects == 1 and len(session.gaps) == 1
    gap = session.gaps[0]
    assert gap["from"] == pytest.approx(left_at, abs=1e-3)
    assert gap["seconds"] == pytest.approx(gap["to"] - gap["from"], abs=1e-3)
    assert gap["seconds"] >= 0.5
    assert session.gap_seconds == pytest.approx(gap["seconds"], abs=1e-3)
    assert session.duration == pytest.approx(session.last_seen - session.created_at, abs=1e-3)
    assert session.ingest_seconds == pytest.approx(session.duration - session.gap_seconds, abs=2e-3)
    # Both parts' bytes, and both parts' frames on the one video track.
    assert session.bytes_received == first.bytes_sent + second.bytes_sent
    assert session.media_bytes == 8 * len(FRAME)
    (video,) = session.tracks
    assert video["frames"] == 8 and video["bytes"] == 8 * len(FRAME)
    await stack.authorizer.drain()
    kinds = [e.kind for e in reversed(await events(stack.store))]
    assert kinds == [
        "publish_accepted",
        "session_started",
        "session_reconnecting",
        "publish_accepted",
        "session_resumed",
        "session_ended",
    ]
    reconnecting = next(e for e in await events(stack.store) if e.kind == "session_reconnecting")
    assert reconnecting.reason == "disconnected" and reconnecting.session_id == live.id


async def test_a_window_that_passes_ends_the_session_at_its_last_packet(stack: Stack) -> None:
    stream, key = await stack.streams.create("cam")
    pub = await _publish(stack, key, 3)
    live = await _status(stack, stream.id, "live")
    pub.abort()
    waiting = await _status(stack, stream.id, "reconnecting")
    (session,) = await _ended(stack, 1)
    assert session.id == live.id
    assert session.end_reason == "disconnected"
    assert session.ended_at == pytest.approx(waiting.last_seen, abs=1e-3)
    assert session.reconnects == 0 and session.gaps == [] and session.gap_seconds == 0
    assert stack.owner.live_session(stream.id) is None
    # A publish after it is a new session.
    again = await _publish(stack, key, 2)
    renewed = await _status(stack, stream.id, "live")
    assert renewed.id != live.id
    again.conn.unpublish()
    await again.flush()
    await _ended(stack, 2)
    again.close()


async def test_an_unpublish_ends_the_session_and_a_republish_starts_another(
    stack: Stack,
) -> None:
    stream, key = await stack.streams.create("cam")
    first = await _publish(stack, key, 3)
    one = await _status(stack, stream.id, "live")
    first.conn.unpublish()
    await first.flush()
    first.close()
    await _ended(stack, 1)
    second = await _publish(stack, key, 3)
    two = await _status(stack, stream.id, "live")
    assert two.id != one.id
    second.abort()
    await _status(stack, stream.id, "reconnecting")
    kicked = await stack.owner.kick(two.id)  # a kick ends a reconnecting session at once
    assert kicked
    ended = await stack.store.get_session(two.id)
    assert ended is not None and (ended.status, ended.end_reason) == ("ended", "kicked")
    assert (await stack.store.get_session(one.id)).end_reason == "unpublished"  # type: ignore[union-attr]


async def test_shutdown_ends_a_reconnecting_session(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, reconnect_window=60.0)
    try:
        stream, key = await stack.streams.create("cam")
        pub = await _publish(stack, key, 3)
        live = await _status(stack, stream.id, "live")
        pub.abort()
        await _status(stack, stream.id, "reconnecting")
    finally:
        await stack.close()
    store = stack.store
    reopened = await type(store).open(store.path)
    try:
        session = await reopened.get_session(live.id)
    finally:
        await reopened.close()
    assert session is not None and (session.status, session.end_reason) == ("ended", "shutdown")
