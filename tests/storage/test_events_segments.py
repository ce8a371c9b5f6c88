"""The event log and the segment table."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import EventRecord, SessionRecord, Store
from tests.support.events import events


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "ingest.db") as store:
        yield store


async def test_events_are_logged_whole(store: Store) -> None:
    await store.log_event("publish_rejected", at=10.0, remote_addr="1.2.3.4", reason="bad_key")
    await store.log_event(
        "session_start", at=12.0, stream_id="s1", session_id="x", remote_addr="1.2.3.4"
    )
    logged = await events(store)
    assert [(e.kind, e.at) for e in logged] == [("session_start", 12.0), ("publish_rejected", 10.0)]
    assert logged[0] == EventRecord(
        id=2,
        at=12.0,
        kind="session_start",
        stream_id="s1",
        session_id="x",
        remote_addr="1.2.3.4",
        reason=None,
    )


async def test_segments(store: Store) -> None:
    await store.create_stream(id="s1", name="n", key_hash="h", playback_id="p", now=0.0)
    await store.insert_session(
        SessionRecord(id="x", stream_id="s1", name="n", created_at=1, last_seen=1, updated_at=1)
    )
    for seq in (1, 0, 2):
        await store.add_segment(
            "x",
            sequence=seq,
            uri=f"x/{seq}.ts",
            duration=2.002,
            bytes=1000 + seq,
            first_timestamp=seq * 2.002,
            keyframe_start=seq != 2,
            discontinuity=seq == 2,
            now=100.0 + seq,
        )
    segments = await store.list_segments("x")
    assert [s["sequence"] for s in segments] == [0, 1, 2]
    first = segments[0]
    assert {k: v for k, v in first.items() if k != "id"} == {
        "session_id": "x",
        "sequence": 0,
        "uri": "x/0.ts",
        "duration": 2.002,
        "bytes": 1000,
        "first_timestamp": 0.0,
        "keyframe_start": True,
        "discontinuity": False,
        "created_at": 100.0,
    }
    assert segments[2]["keyframe_start"] is False and segments[2]["discontinuity"] is True
    assert await store.list_segments("other") == []
    # Safe to repeat (a retried write): a repeated sequence keeps the row already there.
    await store.add_segment(
        "x",
        sequence=0,
        uri="dup",
        duration=1.0,
        bytes=1,
        first_timestamp=0.0,
        keyframe_start=True,
        discontinuity=False,
        now=1.0,
    )
    assert await store.list_segments("x") == segments
    with pytest.raises(sqlite3.IntegrityError):  # unknown session
        await store.add_segment(
            "nope",
            sequence=0,
            uri="u",
            duration=1.0,
            bytes=1,
            first_timestamp=0.0,
            keyframe_start=True,
            discontinuity=False,
            now=1.0,
        )
