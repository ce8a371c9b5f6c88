"""The session ledger: round trips, batch flushes, queries, crash recovery, analytics."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from storage import Analytics, EndReason, SessionRecord, Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "ingest.db") as store:
        for n in (1, 2):
            await store.create_stream(
                id=f"s{n}", name=f"n{n}", key_hash=f"h{n}", playback_id=f"p{n}", now=0.0
            )
        yield store


def session(id: str, created_at: float, *, stream_id: str = "s1", **kw: Any) -> SessionRecord:
    return dataclasses.replace(
        SessionRecord(
            id=id,
            stream_id=stream_id,
            name="n",
            created_at=created_at,
            last_seen=created_at,
            updated_at=created_at,
        ),
        **kw,
    )


def full_session() -> SessionRecord:
    """Every field set away from its default, with awkward values."""
    return SessionRecord(
        id="sess-1",
        stream_id="s1",
        name="näme ✓",
        created_at=1_700_000_000.123456,
        last_seen=1_700_000_123.987654321,
        updated_at=1_700_000_124.1,
        status="ended",
        ended_at=1_700_000_123.987654321,
        end_reason=EndReason.DISCONNECTED,
        err_message="peer reset",
        remote_addr="[::1]:51234",
        encoder="obs-output module (libobs version 30.1.2)",
        duration=123.864197921,
        media_duration=0.1 + 0.2,
        ingest_seconds=1e-9,
        bytes_received=2**62 + 1,
        media_bytes=9_007_199_254_740_993,
        ingest_rate=312_500.5,
        tracks=[
            {
                "kind": "video",
                "track_id": 0,
                "codec": "h264",
                "width": 1920,
                "height": 1080,
                "fps": 29.97,
                "bitrate": None,
                "frames": 3600,
            },
            {
                "kind": "audio",
                "track_id": 1,
                "codec": "aac",
                "sample_rate": 48000,
                "channels": 2,
                "nested": {"a": [1, 2.5, "x", True]},
            },
        ],
        is_healthy=False,
        issues=[{"code": "keyframe_interval", "message": "GOP 10 s > 6 s", "at": 1.5}],
        source_segments=17,
        source_segments_duration=101.97,
        source_bytes=123_456_789,
        viewer_seconds=33.3,
        record=True,
        recording_status="ready",
        recording_url="https://example.test/r.m3u8",
        mp4_url="https://example.test/r.mp4",
    )


async def test_round_trip_is_exact(store: Store) -> None:
    for original in (full_session(), session("plain", 5.0)):
        await store.insert_session(original)
        loaded = await store.get_session(original.id)
        assert loaded == original
        assert loaded is not None
        for f in dataclasses.fields(SessionRecord):
            assert type(getattr(loaded, f.name)) is type(getattr(original, f.name)), f.name
    assert await store.get_session("missing") is None


async def test_inserting_a_session_again_keeps_the_row_there(store: Store) -> None:
    """A retried insert (its first try may have landed) changes nothing."""
    first = session("a", 10.0)
    await store.insert_session(first)
    first.bytes_received = 500
    await store.save_sessions([first])
    await store.insert_session(session("a", 10.0))
    assert await store.get_session("a") == first
    assert (await store.list_sessions())[1] == 1


async def test_save_sessions_batch(store: Store) -> None:
    a, b, c = session("a", 10.0), session("b", 11.0), session("c", 12.0, stream_id="s2")
    for s in (a, b, c):
        await store.insert_session(s)
    await store.add_viewer_seconds("a", 7.5)
    for s in (a, b, c):
        s.last_seen += 30
        s.updated_at = s.last_seen
        s.bytes_received = 1000
        s.tracks = [{"kind": "video", "codec": "h264"}]
        s.issues.append({"code": "x", "message": "y", "at": 3.0})
        s.is_healthy = False
        s.ingest_seconds = 30.0
    b.status, b.ended_at, b.end_reason = "ended", b.last_seen, "unpublished"
    # Fixed columns are not rewritten by a flush.
    a.name = "renamed"
    await store.save_sessions([a, b, c])
    await store.save_sessions([])
    loaded_a = await store.get_session("a")
    assert loaded_a is not None
    assert loaded_a.viewer_seconds == 7.5  # kept: owned by add_viewer_seconds
    assert dataclasses.replace(loaded_a, viewer_seconds=0.0) == a
    assert await store.get_session("b") == b
    assert await store.get_session("c") == c
    # Each stream's last_seen moves forward to its newest session's, never back.
    s1, s2 = await store.get_stream("s1"), await store.get_stream("s2")
    assert s1 is not None and s1.last_seen == 41.0
    assert s2 is not None and s2.last_seen == 42.0
    a.last_seen = 5.0
    await store.save_sessions([a])
    s1 = await store.get_stream("s1")
    assert s1 is not None and s1.last_seen == 41.0
    # A session that was never inserted is skipped.
    await store.save_sessions([session("ghost", 1.0)])
    assert await store.get_session("ghost") is None


async def test_list_sessions_filters_and_pages(store: Store) -> None:
    for i in range(10):
        await store.insert_session(
            session(
                f"x{i}",
                100.0 + i,
                stream_id="s1" if i % 2 == 0 else "s2",
                status="live" if i >= 7 else "ended",
            )
        )
    # Same created_at as x5: newest first means id DESC on a tie.
    await store.insert_session(session("x5b", 105.0, stream_id="s2", status="ended"))
    page, total = await store.list_sessions(limit=3)
    assert [s.id for s in page] == ["x9", "x8", "x7"] and total == 11
    page, total = await store.list_sessions(offset=4, limit=3)
    assert [s.id for s in page] == ["x5b", "x5", "x4"] and total == 11
    page, total = await store.list_sessions(stream_id="s2")
    assert [s.id for s in page] == ["x9", "x7", "x5b", "x5", "x3", "x1"] and total == 6
    page, total = await store.list_sessions(status="live")
    assert [s.id for s in page] == ["x9", "x8", "x7"] and total == 3
    page, total = await store.list_sessions(since=103.0, until=106.0)
    assert [s.id for s in page] == ["x5b", "x5", "x4", "x3"] and total == 4
    page, total = await store.list_sessions(
        stream_id="s1", status="ended", since=100.0, until=104.0, limit=1
    )
    assert [s.id for s in page] == ["x2"] and total == 2
    page, total = await store.list_sessions(stream_id="nope")
    assert page == [] and total == 0


async def test_active_session(store: Store) -> None:
    assert await store.active_session("s1") is None
    await store.insert_session(session("old", 1.0, status="ended"))
    assert await store.active_session("s1") is None
    await store.insert_session(session("live1", 2.0))
    await store.insert_session(session("live2", 3.0))
    await store.insert_session(session("other", 4.0, stream_id="s2"))
    active = await store.active_session("s1")
    assert active is not None and active.id == "live2"


async def test_close_open_sessions(store: Store) -> None:
    live_a = session("a", 100.0, last_seen=160.5, updated_at=160.5, duration=60.0)
    live_b = session("b", 50.0, stream_id="s2", last_seen=70.0, updated_at=70.0)
    ended = session(
        "c",
        10.0,
        status="ended",
        ended_at=20.0,
        end_reason=EndReason.UNPUBLISHED,
        last_seen=20.0,
        duration=10.0,
    )
    for s in (live_a, live_b, ended):
        await store.insert_session(s)
    closed = await store.close_open_sessions(reason=EndReason.SERVER_RESTART, now=1000.0)
    assert [s.id for s in closed] == ["b", "a"]
    a = closed[1]
    assert (a.status, a.end_reason, a.ended_at, a.duration, a.updated_at) == (
        "ended",
        "server_restart",
        160.5,
        60.5,
        1000.0,
    )
    assert a.last_seen == 160.5
    assert await store.get_session("a") == a
    assert await store.get_session("b") == closed[0]
    assert await store.get_session("c") == ended
    assert await store.close_open_sessions(reason=EndReason.SERVER_RESTART, now=2000.0) == []


async def test_a_reconnecting_session_round_trips_and_filters_apart_from_live(
    store: Store,
) -> None:
    gaps = [{"from": 110.25, "to": 113.75, "seconds": 3.5}]
    waiting = session(
        "r", 100.0, last_seen=120.0, reconnects=1, gaps=gaps, gap_seconds=3.5, ingest_seconds=16.5
    )
    await store.insert_session(waiting)
    waiting.status = "reconnecting"
    await store.save_sessions([waiting])
    await store.insert_session(session("l", 200.0))
    assert await store.get_session("r") == waiting
    live, total = await store.list_sessions(status="live")
    assert [s.id for s in live] == ["l"] and total == 1
    reconnecting, total = await store.list_sessions(status="reconnecting")
    assert reconnecting == [waiting] and total == 1
    assert (await store.active_session("s1")) is not None
    # A crash leaves it open like a live one: it is ended the same way.
    closed = await store.close_open_sessions(reason=EndReason.SERVER_RESTART, now=1000.0)
    assert {s.id for s in closed} == {"r", "l"}
    ended = await store.get_session("r")
    assert ended is not None
    assert (ended.status, ended.ended_at, ended.reconnects, ended.gaps) == ("ended", 120.0, 1, gaps)
    assert (await store.list_sessions(status="reconnecting"))[1] == 0


async def test_analytics(store: Store) -> None:
    assert await store.analytics() == Analytics(0, 0.0, 0, 0.0)
    for i, (stream_id, secs, nbytes) in enumerate(
        [("s1", 10.0, 100), ("s1", 20.5, 200), ("s2", 5.0, 50), ("s2", 1.25, 7)]
    ):
        await store.insert_session(
            session(
                f"a{i}",
                100.0 * (i + 1),
                stream_id=stream_id,
                ingest_seconds=secs,
                bytes_received=nbytes,
            )
        )
    await store.add_viewer_seconds("a0", 3.0)
    await store.add_viewer_seconds("a0", 4.5)
    await store.add_viewer_seconds("a3", 1.0)
    total = await store.analytics()
    assert total == Analytics(
        count=4, total_ingest_seconds=36.75, total_bytes=357, total_viewer_seconds=8.5
    )
    assert isinstance(total.total_bytes, int) and isinstance(total.total_ingest_seconds, float)
    assert await store.analytics(stream_id="s1") == Analytics(2, 30.5, 300, 7.5)
    # since inclusive, until exclusive
    assert await store.analytics(since=200.0, until=400.0) == Analytics(2, 25.5, 250, 0.0)
    assert await store.analytics(since=200.0, stream_id="s2") == Analytics(2, 6.25, 57, 1.0)
    assert await store.analytics(until=100.0) == Analytics(0, 0.0, 0, 0.0)
    with pytest.raises(ValueError, match="viewer"):
        await store.add_viewer_seconds("a0", -1.0)
