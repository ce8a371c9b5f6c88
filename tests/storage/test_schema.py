"""Migrations, connection settings and the shape of the tables."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from pathlib import Path

import aiosqlite
import pytest

from storage import SessionRecord, Store
from storage.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SchemaTooNew,
    migrate,
    split_statements,
    user_version,
)


async def test_migrates_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ingest.db"
    store = await Store.open(path)
    try:
        assert store.path == path
        assert path.exists()
        assert SCHEMA_VERSION == len(MIGRATIONS) == 7
        assert await store.integrity_check() == "ok"
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"streams", "sessions", "segments", "events", "targets"} <= tables


async def test_reopen_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "ingest.db"
    async with await Store.open(path) as store:
        await store.create_stream(id="s1", name="one", key_hash="h1", playback_id="p1", now=1.0)
    async with await Store.open(str(path)) as store:
        assert (await store.get_stream("s1")) is not None
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        assert await user_version(conn) == SCHEMA_VERSION
        assert await migrate(conn) == SCHEMA_VERSION


async def test_a_version_1_database_gets_stream_profiles(tmp_path: Path) -> None:
    """Version 2 adds the streams' rendition profiles; the streams already there keep
    everything and have none."""
    path = tmp_path / "ingest.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        for statement in split_statements(MIGRATIONS[0]):
            await conn.execute_fetchall(statement)
        await conn.execute_fetchall("PRAGMA user_version = 1")
        await conn.execute_fetchall(
            "INSERT INTO streams (id, name, key_hash, playback_id, record, created_at,"
            " updated_at) VALUES ('s1', 'old', 'h1', 'p1', 1, 5.0, 6.0)"
        )
    async with await Store.open(path) as store:
        stream = await store.get_stream("s1")
        assert stream is not None
        assert (stream.name, stream.record, stream.updated_at, stream.profiles) == (
            "old",
            True,
            6.0,
            [],
        )
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_version_3_database_gets_the_sessions_multistream_ledger(tmp_path: Path) -> None:
    """The multistream migration gives the sessions already there an empty ledger; a new
    one round-trips."""
    path = tmp_path / "ingest.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        for migration in MIGRATIONS[:3]:
            for statement in split_statements(migration):
                await conn.execute_fetchall(statement)
        await conn.execute_fetchall("PRAGMA user_version = 3")
        await conn.execute_fetchall(
            "INSERT INTO streams (id, name, key_hash, playback_id, created_at, updated_at)"
            " VALUES ('s1', 'old', 'h1', 'p1', 5.0, 6.0)"
        )
        await conn.execute_fetchall(
            "INSERT INTO sessions (id, stream_id, name, created_at, last_seen, updated_at)"
            " VALUES ('x1', 's1', 'old', 5.0, 6.0, 6.0)"
        )
    entry = {"target_id": "t1", "name": "yt", "status": "live", "bytes_sent": 7}
    async with await Store.open(path) as store:
        old = await store.get_session("x1")
        assert old is not None and old.multistream == []
        new = SessionRecord(
            id="x2", stream_id="s1", name="old", created_at=7, last_seen=7, updated_at=7
        )
        await store.insert_session(new)
        new.multistream = [entry]
        await store.save_sessions([new])
        again = await store.get_session("x2")
        assert again is not None and again.multistream == [entry]


async def test_wal_and_pragmas(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "ingest.db") as store:
        for conn in (store._writer, store._reader):
            assert conn is not None
            rows = list(await conn.execute_fetchall("PRAGMA journal_mode"))
            assert rows[0][0] == "wal"
            rows = list(await conn.execute_fetchall("PRAGMA foreign_keys"))
            assert rows[0][0] == 1
            rows = list(await conn.execute_fetchall("PRAGMA busy_timeout"))
            assert rows[0][0] > 0
        assert store._writer is not None
        rows = list(await store._writer.execute_fetchall("PRAGMA synchronous"))
        assert rows[0][0] == 1  # NORMAL
    assert (tmp_path / "ingest.db-wal").exists() or (tmp_path / "ingest.db").exists()


async def test_sessions_table_has_a_column_per_field(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "ingest.db") as store:
        rows = await store._fetch("PRAGMA table_info(sessions)")
    # ... and ``reconnecting``, which with ``status = 'live'`` makes the record's
    # ``reconnecting`` status.
    assert [r["name"] for r in rows] == [f.name for f in fields(SessionRecord)] + ["reconnecting"]


async def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "ingest.db") as store:
        with pytest.raises(sqlite3.IntegrityError):
            await store.insert_session(
                SessionRecord(
                    id="x", stream_id="nope", name="n", created_at=1, last_seen=1, updated_at=1
                )
            )
        # The failed transaction was rolled back: the writer is usable again.
        await store.create_stream(id="s", name="n", key_hash="h", playback_id="p", now=1.0)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ingest.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew):
        await Store.open(path)


async def test_migrate_needs_autocommit(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "x.db") as conn:
        with pytest.raises(ValueError, match="isolation_level"):
            await migrate(conn)


def test_split_statements() -> None:
    script = """
    CREATE TABLE t (a TEXT DEFAULT 'x;y');
    -- a comment
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET a = 'z;'; SELECT 1;
    END;
    """
    parts = split_statements(script)
    assert len(parts) == 2
    assert parts[0] == "CREATE TABLE t (a TEXT DEFAULT 'x;y');"
    assert parts[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("INSERT INTO t VALUES ('unterminated")


async def test_a_version_1_database_gets_targets_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO streams (id, name, key_hash, playback_id, created_at, updated_at)"
            " VALUES ('s1', 'one', 'h1', 'p1', 1.0, 1.0)"
        )
    async with await Store.open(path) as store:
        assert (await store.get_stream("s1")) is not None
        target = await store.create_target(
            id="t1", stream_id="s1", name="yt", url="rtmp://h/app/key", disabled=False, now=2.0
        )
        assert target is not None
        assert await store.list_targets("s1") == ([target], 1)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
