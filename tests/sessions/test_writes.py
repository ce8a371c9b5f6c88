"""The write queue against a real store that another connection locks or that fills up:
writes wait in order, are retried until they land, and none is dropped or left as an
unretrieved exception."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.hooks import PublishAttempt
from sessions.auth import KeyAuthorizer
from sessions.streams import Streams
from sessions.writes import StoreWrites, WriteHealth
from storage import SessionRecord, Store, retryable
from tests.support.events import events


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    # No busy wait: a locked database fails a write at once, and the queue retries it.
    store = await Store.open(tmp_path / "ledger.db", busy_timeout=0)
    await store.create_stream(id="s1", name="cam", key_hash="h", playback_id="p", now=0.0)
    yield store
    await store.close()


@pytest.fixture
def locker(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the same database, as the CLI or a backup would hold it."""
    conn = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    yield conn
    conn.close()


@pytest.fixture
async def unretrieved() -> AsyncIterator[list[dict[str, Any]]]:
    """What the loop's exception handler gets (e.g. "Task exception was never
    retrieved"), after a garbage collection at the end of the test."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: seen.append(context))
    yield seen
    gc.collect()
    loop.set_exception_handler(None)


class Pauses:
    """The queue's sleep: records each pause and yields to the loop briefly."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0.005)


async def _until(condition: Any, what: str) -> None:
    async with asyncio.timeout(30):  # a guard against hanging, not a bound
        while not condition():
            await asyncio.sleep(0.01)


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if r.getMessage() == name]  # type: ignore[attr-defined]


def _session(**fields: Any) -> SessionRecord:
    return SessionRecord(
        id="a", stream_id="s1", name="cam", created_at=10.0, last_seen=10.0, updated_at=10.0,
        **fields,
    )  # fmt: skip


async def test_writes_wait_in_order_behind_a_locked_database_and_all_land(
    store: Store,
    locker: sqlite3.Connection,
    caplog: pytest.LogCaptureFixture,
    unretrieved: list[dict[str, Any]],
) -> None:
    caplog.set_level(logging.INFO)
    pauses = Pauses()
    writes = StoreWrites(store, sleep=pauses)
    record = _session()
    locker.execute("BEGIN EXCLUSIVE")
    writes.put("insert", lambda: store.insert_session(record))
    writes.put(
        "segment",
        lambda: store.add_segment(
            "a", sequence=0, uri="seg_00000.ts", duration=2.0, bytes=100,
            first_timestamp=0.0, keyframe_start=True, discontinuity=False, now=11.0,
        ),
    )  # fmt: skip
    writes.event("session_ended", at=14.0, stream_id="s1", session_id="a")

    def end() -> Any:
        record.status, record.ended_at, record.end_reason = "ended", 14.0, "unpublished"
        record.last_seen, record.bytes_received = 14.0, 5000
        return store.save_sessions([record])

    writes.put("end", end)
    await _until(lambda: len(pauses.delays) >= 6, "a few retries")
    # Every write still waits behind the first; reads go on meanwhile.
    health = writes.health()
    assert health.status == "degraded" and health.pending_writes == 4
    assert health.last_error is not None and "locked" in health.last_error
    assert await store.get_session("a") is None
    assert pauses.delays[:4] == [0.05, 0.1, 0.2, 0.4]
    assert max(pauses.delays) <= writes.retry_delay_max
    (degraded, *_) = _events(caplog, "store_degraded")
    assert degraded["pending"] == 4 and degraded["write"] == "insert"

    locker.execute("COMMIT")
    await writes.join()
    assert writes.health() == WriteHealth("ok", 0, None, 0)
    saved = await store.get_session("a")
    assert saved is not None and saved.status == "ended" and saved.bytes_received == 5000
    assert [s["uri"] for s in await store.list_segments("a")] == ["seg_00000.ts"]
    assert [e.kind for e in await events(store)] == ["session_ended"]
    assert _events(caplog, "store_recovered")
    assert not _events(caplog, "store_write_dropped")
    gc.collect()
    assert unretrieved == []


async def test_a_lasting_fault_is_logged_again_while_it_lasts(
    store: Store, locker: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    pauses = Pauses()

    async def sleep(delay: float) -> None:
        now[0] += 7.0  # each retry comes 7 s after the last on this clock
        await pauses(delay)

    writes = StoreWrites(store, sleep=sleep, clock=lambda: now[0], report_interval=30.0)
    locker.execute("BEGIN EXCLUSIVE")
    writes.event("waiting", at=1.0)
    await _until(lambda: len(pauses.delays) >= 11, "70 s of retries")
    locker.execute("COMMIT")
    await writes.join()
    lines = _events(caplog, "store_degraded")
    # At the first failure, then once per 30 s of this clock (not once per retry).
    assert [line["failing_for"] for line in lines[:3]] == [0.0, 35.0, 70.0]
    assert all(line["pending"] == 1 for line in lines)


async def test_a_full_database_is_retried_until_it_can_grow(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLITE_FULL (``max_page_count`` reached) is a fault to wait out, like a full disk."""
    async with store._statement() as conn:  # the writer's connection: the limit is its own
        pages = (await conn.execute_fetchall("PRAGMA page_count"))[0][0]
        await conn.execute_fetchall(f"PRAGMA max_page_count = {pages}")
    writes = StoreWrites(store, sleep=Pauses())
    for i in range(200):  # far more than the pages left can hold
        writes.event("filler", at=float(i), reason="x" * 200)
    await _until(lambda: writes.degraded, "the database to fill up")
    assert "full" in (writes.health().last_error or "")
    assert writes.pending > 0
    async with store._statement() as conn:
        await conn.execute_fetchall("PRAGMA max_page_count = 1073741823")
    await writes.join()
    assert len(await events(store, limit=1000)) == 200
    assert writes.health().status == "ok" and writes.dropped == 0


async def test_a_write_no_retry_can_fix_is_dropped_loudly_and_the_rest_land(
    store: Store, caplog: pytest.LogCaptureFixture, unretrieved: list[dict[str, Any]]
) -> None:
    writes = StoreWrites(store)
    writes.put(
        "segment of an unknown session",
        lambda: store.add_segment(
            "nobody", sequence=0, uri="u", duration=1.0, bytes=1, first_timestamp=0.0,
            keyframe_start=True, discontinuity=False, now=1.0,
        ),
    )  # fmt: skip
    writes.event("after", at=1.0)
    await writes.join()
    assert [e.kind for e in await events(store)] == ["after"]
    assert writes.health() == WriteHealth("ok", 0, None, 1)
    (dropped,) = _events(caplog, "store_write_dropped")
    assert dropped["write"] == "segment of an unknown session"
    assert "IntegrityError" in dropped["error"]
    # An awaited write gets its error instead.
    with pytest.raises(sqlite3.IntegrityError):
        await writes.call("insert into a missing stream", lambda: store.insert_session(
            SessionRecord(id="b", stream_id="none", name="x", created_at=1.0,
                          last_seen=1.0, updated_at=1.0)))  # fmt: skip
    assert await writes.call("read back", lambda: events(store)) != []
    gc.collect()
    assert unretrieved == []


async def test_shutdown_gives_up_after_its_wait_and_says_how_many_were_lost(
    store: Store, locker: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    writes = StoreWrites(store, sleep=Pauses())
    locker.execute("BEGIN EXCLUSIVE")
    for i in range(3):
        writes.event("pending", at=float(i))
    assert await writes.flush(0.2) == 3
    (lost,) = _events(caplog, "store_writes_lost")
    assert lost["count"] == 3 and "locked" in lost["error"]
    await writes.join()  # nothing left to wait for
    locker.execute("COMMIT")
    writes.event("later", at=9.0)
    assert await writes.flush(30) == 0
    assert [e.kind for e in await events(store)] == ["later"]
    assert writes.lost == 3


async def test_refused_publishes_are_logged_while_the_database_is_locked(
    store: Store, locker: sqlite3.Connection, unretrieved: list[dict[str, Any]]
) -> None:
    """The event-log row of a refused key waits for the lock instead of raising in a task
    nobody awaits."""
    writes = StoreWrites(store, sleep=Pauses())
    authorizer = KeyAuthorizer(Streams(store), writes, reject_delay=(0, 0))
    locker.execute("BEGIN EXCLUSIVE")
    attempt = PublishAttempt(1, "192.0.2.7:5000", "live", "wrong-key", "", None)
    assert not (await authorizer.authorize(attempt)).allowed
    await _until(lambda: writes.degraded, "the write to fail")
    gc.collect()
    await asyncio.sleep(0)
    assert unretrieved == []
    locker.execute("COMMIT")
    await authorizer.drain()
    (event,) = await events(store)
    assert event.kind == "publish_rejected" and event.reason == "unknown stream key"


def test_what_is_worth_retrying() -> None:
    def error(cls: type[sqlite3.Error], message: str, code: int | None) -> sqlite3.Error:
        exc = cls(message)
        if code is not None:
            exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        return exc

    assert retryable(error(sqlite3.OperationalError, "database is locked", 5))
    assert retryable(error(sqlite3.OperationalError, "database table is locked", 6))
    assert retryable(error(sqlite3.OperationalError, "database or disk is full", 13))
    assert retryable(error(sqlite3.OperationalError, "disk I/O error", 10 | (3 << 8)))
    assert retryable(error(sqlite3.OperationalError, "database is locked", None))
    assert not retryable(error(sqlite3.OperationalError, "no such table: x", 1))
    assert not retryable(error(sqlite3.IntegrityError, "FOREIGN KEY constraint failed", 787))
    assert not retryable(error(sqlite3.DatabaseError, "database disk image is malformed", 11))
    assert not retryable(RuntimeError("the store is closed"))


def test_workers_health_adds_up() -> None:
    ok = WriteHealth("ok", 2, None, 0)
    bad = WriteHealth("degraded", 40, "database is locked", 1)
    assert WriteHealth.combine([ok, bad]) == WriteHealth("degraded", 42, "database is locked", 1)
    assert WriteHealth.combine([ok, ok]) == WriteHealth("ok", 4, None, 0)
    assert WriteHealth.from_dict(bad.to_dict()) == bad
