"""Faults during real publishes: the database locked by another process (during a session,
at start, and with the end queued when the server is killed), the database full, and a
full disk under the segments. Every session ends exactly once, whole, once the fault is
gone; the server says it is degraded meanwhile and never drops a write."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bench.media import make_flv
from sessions.streams import Streams
from storage import SessionRecord, Store
from tests.ingest.server.test_workers import Server, running
from tests.support.events import events
from tests.support.faults import FullDisk
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.stack import Stack, start_stack

#: A locked database fails a write after this long (the default is 5 s); then it is retried.
BUSY_TIMEOUT = "0.05"
#: Log lines that must never appear: a write lost or an error nobody looked at.
NEVER = ("store_write_dropped", "store_writes_lost", "never retrieved", "Traceback")


async def _until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something true; a guard against
    hanging, not a bound."""
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.05)


def _log(server: Server) -> str:
    return (server.data_dir.parent / "server.log").read_text()


async def _health(server: Server, status: str) -> dict[str, Any]:
    """``/healthz`` once it says ``status`` (and, for "ok", once nothing is pending)."""

    async def check() -> dict[str, Any] | None:
        health: dict[str, Any] = await server.call("GET", "/healthz")
        if health["status"] != status:
            return None
        return health if status != "ok" or not health["store"]["pending_writes"] else None

    result: dict[str, Any] = await _until(check)
    return result


def _lock(database: Path) -> sqlite3.Connection:
    """Another process's write lock, as the CLI or a backup would hold it."""
    locker = sqlite3.connect(database, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    return locker


async def _stop(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.proc.wait(), 30) == 0


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
async def test_a_session_published_while_the_database_is_locked_lands_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    monkeypatch.setenv("RTMP_INGEST_STORAGE_BUSY_TIMEOUT", BUSY_TIMEOUT)
    source = make_flv(tmp_path / "clip.flv", seconds=3)
    async with running(tmp_path, 1, hls=True, processes=processes) as (server, streams):
        (stream, key), = streams  # fmt: skip
        database = server.data_dir / "rtmp-ingest.db"
        locker = _lock(database)
        try:
            url = f"rtmp://127.0.0.1:{server.rtmp_port}/live/{key}"
            assert await publish_with_ffmpeg(source, url, realtime=True) == 0
            await _until(lambda: "event=session_ended" in _log(server))
            # Nothing could be written, and the server says so; ingest went on.
            health = await _health(server, "degraded")
            # The session's row, events, segments and end wait (in a worker process, which
            # the main process counts in: its own queue holds one event).
            assert health["store"]["pending_writes"] >= 4
            status = await server.status()
            assert status["store"]["status"] == "degraded"
            assert status["store"]["pending_writes"] >= 4
            assert "locked" in status["store"]["last_error"]
            assert (await server.call("GET", "/api/sessions"))["total"] == 0
            assert "event=store_degraded" in _log(server)
        finally:
            locker.execute("COMMIT")
            locker.close()
        await _health(server, "ok")
        page = await server.call("GET", "/api/sessions")
        assert page["total"] == 1
        (session,) = page["items"]
        assert session["status"] == "ended" and session["end_reason"] == "unpublished"
        assert session["stream_id"] == stream.id
        assert 2.0 < session["duration"] < 4.5
        assert session["bytes_received"] > 0 and session["media_bytes"] > 0
        assert session["source_segments"] >= 1
        await _stop(server)
    log = (tmp_path / "server.log").read_text()
    ended = re.search(r"event=session_ended .*bytes_received=(\d+)", log)
    assert ended and int(ended.group(1)) == session["bytes_received"], "the final counters"
    assert "event=store_recovered" in log
    assert not [bad for bad in NEVER if bad in log], log
    async with await Store.open(database) as store:
        segments = await store.list_segments(session["id"])
        assert len(segments) == session["source_segments"]
        assert [s["sequence"] for s in segments] == list(range(len(segments)))
        kinds = [e.kind for e in reversed(await events(store))]
        assert kinds == ["publish_accepted", "session_started", "session_ended"]


@pytest.mark.slow
async def test_a_server_started_on_a_locked_database_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery at start (closing what a crash left live) waits for the lock, logged,
    instead of failing the start."""
    monkeypatch.setenv("RTMP_INGEST_STORAGE_BUSY_TIMEOUT", BUSY_TIMEOUT)
    data = tmp_path / "data"
    database = data / "rtmp-ingest.db"
    async with await Store.open(database) as store:
        stream, _ = await Streams(store).create("cam")
        await store.insert_session(
            SessionRecord(id="left-open", stream_id=stream.id, name="cam",
                          created_at=100.0, last_seen=160.0, updated_at=160.0)
        )  # fmt: skip
    config = tmp_path / "config.toml"
    config.write_text(
        '[rtmp]\nlisten = "127.0.0.1:0"\n[http]\nlisten = "127.0.0.1:0"\n'
        f'[storage]\ndata_dir = "{data}"\n'
    )
    locker = _lock(database)
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingest", "serve", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    try:
        await _until(lambda: "event=store_degraded" in log_path.read_text())
        assert proc.returncode is None
        locker.execute("COMMIT")
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while b"RTMP on" not in await proc.stdout.readline():
                assert proc.returncode is None, log_path.read_text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        locker.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = log_path.read_text()
    assert "event=session_recovered" in text and "event=store_recovered" in text
    async with await Store.open(database) as store:
        session = await store.get_session("left-open")
        assert session is not None and session.status == "ended"
        assert session.end_reason == "server_restart" and session.ended_at == 160.0


@pytest.mark.slow
async def test_killed_with_the_end_queued_the_next_start_ends_it_at_its_last_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while the end of a session waits for a locked database: the writes
    waiting in memory are gone, and the next start closes the session as
    ``server_restart`` with the counters of its last flush that landed."""
    monkeypatch.setenv("RTMP_INGEST_STORAGE_BUSY_TIMEOUT", BUSY_TIMEOUT)
    source = make_flv(tmp_path / "clip.flv", seconds=4)
    async with running(tmp_path, 1, processes=1) as (server, streams):
        (_, key), = streams  # fmt: skip
        database = server.data_dir / "rtmp-ingest.db"
        reader = sqlite3.connect(database, isolation_level=None)
        url = f"rtmp://127.0.0.1:{server.rtmp_port}/live/{key}"
        publisher = await start_ffmpeg(source, url, realtime=True)

        def flushed() -> tuple[float, float]:
            """The stored session's (duration, last_seen)."""
            rows = reader.execute("SELECT duration, last_seen FROM sessions").fetchall()
            return (float(rows[0][0]), float(rows[0][1])) if rows else (0.0, 0.0)

        await _until(lambda: flushed()[0] >= 1.0)
        locker = _lock(database)
        landed, last_seen = flushed()  # nothing lands after this
        assert await publisher.wait() == 0
        await _until(lambda: "event=session_ended" in _log(server))
        await _health(server, "degraded")
        server.proc.kill()
        await server.proc.wait()
        locker.execute("COMMIT")
        locker.close()
        reader.close()
    final = re.search(r"event=session_ended .*duration=([\d.]+)", _log(server))
    assert final is not None
    async with running(tmp_path, 0, processes=1) as (restarted, _):
        await _stop(restarted)
    assert "event=session_recovered" in _log(restarted)
    async with await Store.open(database) as store:
        ((session,), _) = await store.list_sessions()
    assert session.status == "ended" and session.end_reason == "server_restart"
    assert session.ended_at == session.last_seen == last_seen
    assert session.duration == pytest.approx(landed, abs=0.001)
    assert session.duration < float(final.group(1)) - 1.0


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = await start_stack(tmp_path, hls=True)
    yield s
    await s.close()


async def _ended(store: Store, stream_id: str) -> SessionRecord:
    async def check() -> SessionRecord | None:
        rows, _ = await store.list_sessions(stream_id=stream_id)
        return rows[0] if rows and rows[0].status == "ended" else None

    session: SessionRecord = await _until(check)
    return session


def _fields(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [r.fields for r in caplog.records if r.getMessage() == event]  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_a_session_published_while_the_database_is_full_ends_with_its_final_counters(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stream, key = await stack.streams.create("cam")
    filler, _ = await stack.streams.create("filler")
    store = stack.store
    # The database may not grow (max_page_count is a setting of each connection, so it is
    # set on the server's writer), and the free room of every table a session writes to
    # is used up: no session row, segment or event fits.
    fill = (
        ("INSERT INTO events (at, reason, stream_id, kind) VALUES (?, ?, ?, 'f')", (filler.id,)),
        (
            "INSERT INTO sessions (created_at, id, name, stream_id, last_seen, updated_at,"
            " status) VALUES (0, ?, ?, ?, 0, 0, 'ended')",
            (filler.id,),
        ),
        (
            "INSERT INTO segments (sequence, uri, session_id, duration, bytes,"
            " first_timestamp, keyframe_start, discontinuity, created_at)"
            " VALUES (?, ?, ?, 0, 0, 0, 0, 0, 0)",
            ("f-500-0",),
        ),
    )
    async with store._statement() as conn:
        pages = (await conn.execute_fetchall("PRAGMA page_count"))[0][0]
        await conn.execute_fetchall(f"PRAGMA max_page_count = {pages}")
        for sql, fixed in fill:
            for size in (500, 50, 0):  # until not even the smallest row fits
                with pytest.raises(sqlite3.OperationalError, match="full"):
                    for i in range(10_000):
                        first = f"f-{size}-{i}" if "sessions" in sql else size * 100_000 + i
                        await conn.execute_fetchall(sql, (first, "x" * size, *fixed))
    writes = stack.manager.writes
    source = make_flv(tmp_path / "clip.flv", seconds=3)
    assert await publish_with_ffmpeg(source, stack.url(key), realtime=True) == 0
    await _until(lambda: _fields(caplog, "session_ended"))
    await _until(lambda: writes.degraded)
    assert "full" in (writes.health().last_error or "") and writes.pending > 0
    assert (await store.list_sessions(stream_id=stream.id))[1] == 0
    async with store._statement() as conn:
        await conn.execute_fetchall("PRAGMA max_page_count = 1073741823")
    session = await _ended(store, stream.id)
    await writes.join()
    (ended,) = _fields(caplog, "session_ended")
    assert session.end_reason == "unpublished"
    assert session.bytes_received == ended["bytes_received"] > 0
    assert session.media_bytes == ended["media_bytes"]
    assert session.duration == ended["duration"]
    segments = await store.list_segments(session.id)
    assert len(segments) == session.source_segments >= 1
    kinds = {e.kind for e in await events(store, limit=1000)}
    assert {"publish_accepted", "session_started", "session_ended"} <= kinds
    assert _fields(caplog, "store_degraded") and _fields(caplog, "store_recovered")
    assert writes.dropped == 0


@pytest.mark.slow
async def test_a_full_disk_under_the_segments_skips_them_and_the_session_goes_on(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    disk = FullDisk(monkeypatch, tmp_path / "full")
    stream, key = await stack.streams.create("cam")
    store = stack.store
    source = make_flv(tmp_path / "clip.flv", seconds=12)
    publisher = await start_ffmpeg(source, stack.url(key), realtime=True)

    async def segments() -> list[dict[str, Any]]:
        rows, _ = await store.list_sessions()
        return await store.list_segments(rows[0].id) if rows else []

    await _until(segments)
    disk.on = True
    await _until(lambda: _fields(caplog, "segment_write_failed"))
    disk.on = False
    assert await asyncio.wait_for(publisher.wait(), 30) == 0
    session = await _ended(store, stream.id)

    assert session.end_reason == "unpublished"
    assert session.bytes_received > 0 and session.duration > 11.0
    codes = {issue["code"] for issue in session.issues}
    assert "segment_write_failed" in codes and not session.is_healthy
    (first, *_) = _fields(caplog, "segment_write_failed")
    assert first["session"] == session.id and first["error"] == "No space left on device"
    written = await store.list_segments(session.id)
    assert len(written) == session.source_segments
    assert [s["sequence"] for s in written] == list(range(len(written)))
    gap = [s for s in written if s["discontinuity"]]
    assert gap, "a segment was written after the failure, starting a discontinuity"
    folder = stack.media_root / stream.playback_id / session.id
    assert all((folder / s["uri"]).is_file() for s in written)
    assert not list(folder.glob("*.tmp"))
    assert not _fields(caplog, "segmenter_failed")
    assert len(_fields(caplog, "session_ended")) == 1
