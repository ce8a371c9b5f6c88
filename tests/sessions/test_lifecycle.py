"""Sessions as real publishers make them: one per publish, exact counters, the right end.

Every test publishes over a real socket (the ffmpeg command line, or the core's client
role for byte-exact checks) and then reads the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.media import make_flv, read_flv_tags
from ingest.rtmp.events import StatusReceived
from storage.models import SessionRecord
from tests.support.events import events
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.rtmp_client import SocketPublisher
from tests.support.stack import Stack, start_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = await start_stack(tmp_path, idle_timeout=1.0)
    yield s
    await s.close()


async def _ended(stack: Stack, count: int = 1, timeout: float = 15.0) -> list[SessionRecord]:
    """The ledger's sessions once ``count`` of them have ended (oldest first)."""
    async with asyncio.timeout(timeout):
        while True:
            rows, _ = await stack.store.list_sessions(limit=100)
            ended = [r for r in rows if r.status == "ended"]
            if len(ended) >= count:
                return sorted(rows, key=lambda r: r.created_at)
            await asyncio.sleep(0.05)


async def _live(stack: Stack, stream_id: str, timeout: float = 15.0) -> SessionRecord:
    async with asyncio.timeout(timeout):
        while (record := stack.owner.live_session(stream_id)) is None:
            await asyncio.sleep(0.02)
    return record


async def _ffmpeg(source: Path, url: str) -> asyncio.subprocess.Process:
    return await start_ffmpeg(source, url, realtime=True)


def _span(source: Path) -> tuple[float, dict[int, int]]:
    """The clip's media timestamp span (s) and payload bytes per tag type."""
    tags = [t for t in read_flv_tags(source) if t.tag_type in (8, 9)]
    sizes: dict[int, int] = {8: 0, 9: 0}
    for tag in tags:
        sizes[tag.tag_type] += len(tag.body)
    stamps = [t.timestamp for t in tags]
    return (max(stamps) - min(stamps)) / 1000, sizes


@pytest.mark.slow
async def test_ffmpeg_publish_makes_one_exact_session(stack: Stack, tmp_path: Path) -> None:
    stream, key = await stack.streams.create("cam")
    source = make_flv(tmp_path / "clip.flv", seconds=3, size=(640, 360), fps=30)
    span, sizes = _span(source)
    assert await publish_with_ffmpeg(source, stack.url(key), realtime=True) == 0
    (session,) = await _ended(stack)

    assert session.stream_id == stream.id
    assert session.end_reason == "unpublished"
    assert session.ended_at == session.last_seen
    assert abs(session.duration - span) <= 0.2
    assert abs(session.media_duration - span) <= 1 / 30
    assert session.remote_addr.startswith("127.0.0.1:")
    assert session.encoder and "Lavf" in session.encoder
    video, audio = session.tracks
    assert (video["kind"], video["codec"], video["width"], video["height"]) == (
        "video",
        "h264",
        640,
        360,
    )
    assert video["fps"] == pytest.approx(30, abs=0.5)
    assert (audio["kind"], audio["codec"], audio["sample_rate"], audio["channels"]) == (
        "audio",
        "aac",
        48000,
        2,
    )
    assert video["bytes"] == sizes[9] and audio["bytes"] == sizes[8]
    assert session.media_bytes == sizes[8] + sizes[9]
    assert session.bytes_received > session.media_bytes
    assert session.ingest_seconds == session.duration
    logged = await events(stack.store)
    kinds = [e.kind for e in reversed(logged)]
    assert kinds == ["publish_accepted", "session_started", "session_ended"]


async def test_counts_every_byte_the_socket_carried(stack: Stack, tmp_path: Path) -> None:
    _, key = await stack.streams.create("exact")
    source = make_flv(tmp_path / "clip.flv", seconds=1)
    pub = await SocketPublisher.open(stack.rtmp.port, name=key)
    await pub.publish()
    sent = {8: 0, 9: 0}
    for tag in read_flv_tags(source):
        if tag.tag_type == 9:
            pub.conn.send_video(tag.timestamp, tag.body)
        elif tag.tag_type == 8:
            pub.conn.send_audio(tag.timestamp, tag.body)
        else:
            continue
        sent[tag.tag_type] += len(tag.body)
    pub.conn.unpublish()
    await pub.flush()
    (session,) = await _ended(stack)
    assert session.end_reason == "unpublished"
    assert session.bytes_received == pub.conn.bytes_sent
    video, audio = session.tracks
    assert (video["bytes"], audio["bytes"]) == (sent[9], sent[8])
    pub.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_vanished_publisher(stack: Stack, tmp_path: Path, how: str) -> None:
    """An encoder killed outright ends as ``disconnected``; a frozen one (SIGSTOP, the
    socket left open) ends as ``timeout`` after the idle timeout, at its last packet."""
    stream, key = await stack.streams.create("cam")
    source = make_flv(tmp_path / "clip.flv", seconds=20)
    proc = await _ffmpeg(source, stack.url(key))
    try:
        await _live(stack, stream.id)
        await asyncio.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        stopped_at = stack.manager.clock()
        (session,) = await _ended(stack)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
            os.kill(proc.pid, signal.SIGCONT)
        await proc.wait()
    assert session.end_reason == ("disconnected" if how == "kill" else "timeout")
    assert session.ended_at is not None
    # The last packet is stamped as read: up to one read interval after it arrived.
    assert session.ended_at <= stopped_at + stack.rtmp.config.read_interval + 0.05
    assert stopped_at - session.ended_at < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("action", ["kick", "disable", "delete"])
async def test_operator_ends_a_live_session(stack: Stack, tmp_path: Path, action: str) -> None:
    stream, key = await stack.streams.create("cam")
    source = make_flv(tmp_path / "clip.flv", seconds=20)
    proc = await _ffmpeg(source, stack.url(key))
    live = await _live(stack, stream.id)
    if action == "kick":
        assert await stack.owner.kick(live.id)
    elif action == "disable":
        await stack.streams.set_disabled(stream.id, True)
    else:
        assert await stack.streams.delete(stream.id)
    assert await asyncio.wait_for(proc.wait(), 10) != 0
    (session,) = await _ended(stack)
    assert session.end_reason == ("kicked" if action == "kick" else "key_disabled")
    assert not await stack.owner.kick(live.id)


@pytest.mark.slow
async def test_disabling_through_the_store_alone_ends_the_session(
    stack: Stack, tmp_path: Path
) -> None:
    """What the CLI does (another process): the server notices at its next flush."""
    stream, key = await stack.streams.create("cam")
    proc = await _ffmpeg(make_flv(tmp_path / "clip.flv", seconds=20), stack.url(key))
    await _live(stack, stream.id)
    await stack.store.update_stream(stream.id, now=0.0, disabled=True)
    assert await asyncio.wait_for(proc.wait(), 10) != 0
    (session,) = await _ended(stack)
    assert session.end_reason == "key_disabled"


async def test_second_publisher_replaces_the_first(stack: Stack) -> None:
    stream, key = await stack.streams.create("cam")
    first = await SocketPublisher.open(stack.rtmp.port, name=key)
    await first.publish()
    first.conn.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(50))
    await first.flush()
    await _live(stack, stream.id)
    second = await SocketPublisher.open(stack.rtmp.port, name=key)
    await second.publish()
    await first.wait_closed()
    second.conn.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(50))
    second.conn.unpublish()
    await second.flush()
    old, new = await _ended(stack, 2)
    assert old.end_reason == "replaced"
    assert new.end_reason == "unpublished"
    second.close()


async def test_publish_without_media_leaves_no_session(stack: Stack) -> None:
    _, key = await stack.streams.create("cam")
    pub = await SocketPublisher.open(stack.rtmp.port, name=key)
    await pub.publish()
    pub.conn.unpublish()
    await pub.flush()
    pub.close()
    await asyncio.sleep(0.3)
    assert (await stack.store.list_sessions())[1] == 0
    await stack.authorizer.drain()
    assert [e.kind for e in await events(stack.store)] == ["publish_accepted"]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["wrong", "disabled", "deleted"])
async def test_refused_key(stack: Stack, tmp_path: Path, case: str) -> None:
    stream, key = await stack.streams.create("cam")
    if case == "wrong":
        key = key[::-1]
    elif case == "disabled":
        await stack.streams.set_disabled(stream.id, True)
    else:
        await stack.streams.delete(stream.id)
    rc = await publish_with_ffmpeg(make_flv(tmp_path / "clip.flv", seconds=1), stack.url(key))
    assert rc != 0
    assert (await stack.store.list_sessions())[1] == 0
    await stack.authorizer.drain()
    (event,) = await events(stack.store)
    assert event.kind == "publish_rejected"
    assert event.reason == ("stream is disabled" if case == "disabled" else "unknown stream key")
    assert event.remote_addr is not None and event.remote_addr.startswith("127.0.0.1:")


async def test_wrong_keys_from_one_address_are_throttled(stack: Stack) -> None:
    checked = 0
    authenticate = stack.streams.authenticate

    async def counting(key: str) -> object:
        nonlocal checked
        checked += 1
        return await authenticate(key)

    stack.streams.authenticate = counting  # type: ignore[assignment,method-assign]
    codes = []
    for i in range(100):
        pub = await SocketPublisher.open(stack.rtmp.port, name=f"guess-{i}")
        codes.append((await pub.wait_for(StatusReceived)).code)
        await pub.wait_closed()
    assert checked == 10, "after 10 refusals the address is refused without a key check"
    assert set(codes[:10]) == {"NetStream.Publish.BadName"}
    assert set(codes[10:]) == {"NetStream.Publish.Denied"}
    await stack.authorizer.drain()
    logged = await events(stack.store, limit=1000)
    assert sum(e.kind == "publish_rejected" for e in logged) == 10
    assert sum(e.kind == "publish_throttled" for e in logged) == 1
