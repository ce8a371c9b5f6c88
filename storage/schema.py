"""The database schema, as migrations numbered by ``PRAGMA user_version``.

``MIGRATIONS[n - 1]`` takes a database from version ``n - 1`` to version ``n``. A migration is
never edited once released: a change to the schema is a new script appended to the list.
Each one runs in its own ``BEGIN IMMEDIATE`` transaction together with the bump of
``user_version``, so a database is always at exactly one version, even after a crash
mid-migration, and two processes opening the same file at once migrate it only once.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import aiosqlite

_V1: Final = """
CREATE TABLE streams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    playback_id TEXT NOT NULL UNIQUE,
    disabled    INTEGER NOT NULL DEFAULT 0,
    record      INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    last_seen   REAL,
    deleted_at  REAL
);
CREATE UNIQUE INDEX streams_name_live ON streams (name) WHERE deleted_at IS NULL;

CREATE TABLE sessions (
    id                       TEXT PRIMARY KEY,
    stream_id                TEXT NOT NULL REFERENCES streams (id),
    name                     TEXT NOT NULL,
    created_at               REAL NOT NULL,
    last_seen                REAL NOT NULL,
    updated_at               REAL NOT NULL,
    status                   TEXT NOT NULL DEFAULT 'live' CHECK (status IN ('live', 'ended')),
    ended_at                 REAL,
    end_reason               TEXT,
    err_message              TEXT,
    remote_addr              TEXT NOT NULL DEFAULT '',
    encoder                  TEXT,
    duration                 REAL NOT NULL DEFAULT 0,
    media_duration           REAL NOT NULL DEFAULT 0,
    ingest_seconds           REAL NOT NULL DEFAULT 0,
    bytes_received           INTEGER NOT NULL DEFAULT 0,
    media_bytes              INTEGER NOT NULL DEFAULT 0,
    ingest_rate              REAL NOT NULL DEFAULT 0,
    tracks                   TEXT NOT NULL DEFAULT '[]',
    is_healthy               INTEGER NOT NULL DEFAULT 1,
    issues                   TEXT NOT NULL DEFAULT '[]',
    source_segments          INTEGER NOT NULL DEFAULT 0,
    source_segments_duration REAL NOT NULL DEFAULT 0,
    source_bytes             INTEGER NOT NULL DEFAULT 0,
    viewer_seconds           REAL NOT NULL DEFAULT 0,
    record                   INTEGER NOT NULL DEFAULT 0,
    recording_status         TEXT,
    recording_url            TEXT,
    mp4_url                  TEXT
);
CREATE INDEX sessions_stream_created ON sessions (stream_id, created_at);
CREATE INDEX sessions_status ON sessions (status);
CREATE INDEX sessions_created ON sessions (created_at);

CREATE TABLE segments (
    id              INTEGER PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sessions (id),
    sequence        INTEGER NOT NULL,
    uri             TEXT NOT NULL,
    duration        REAL NOT NULL,
    bytes           INTEGER NOT NULL,
    first_timestamp REAL NOT NULL,
    keyframe_start  INTEGER NOT NULL,
    discontinuity   INTEGER NOT NULL,
    created_at      REAL NOT NULL,
    UNIQUE (session_id, sequence)
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    kind        TEXT NOT NULL,
    stream_id   TEXT,
    session_id  TEXT,
    remote_addr TEXT,
    reason      TEXT
);
CREATE INDEX events_at ON events (at);
CREATE INDEX events_remote_addr_at ON events (remote_addr, at);
"""

#: A stream's rendition profiles, as a JSON array of objects (``[]``: none set).
_V2: Final = """
ALTER TABLE streams ADD COLUMN profiles TEXT NOT NULL DEFAULT '[]';
"""

#: Multistream targets: where a stream's sessions are forwarded (the URL holds a third
#: party's stream key, in clear, since it is needed to forward; it is shown masked).
_V3: Final = """
CREATE TABLE targets (
    id         TEXT PRIMARY KEY,
    stream_id  TEXT NOT NULL REFERENCES streams (id),
    name       TEXT NOT NULL,
    url        TEXT NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX targets_stream_created ON targets (stream_id, created_at);
"""

#: Each session's multistream targets and what they got, as a JSON array of objects
#: (``[]``: none forwarded).
_V_MULTISTREAM: Final = """
ALTER TABLE sessions ADD COLUMN multistream TEXT NOT NULL DEFAULT '[]';
"""

#: Renditions: what a session transcoded (profiles produced, per-profile counters as JSON
#: arrays) and its transcoded counters.
_V_RENDITIONS: Final = """
ALTER TABLE sessions ADD COLUMN profiles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sessions ADD COLUMN renditions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sessions ADD COLUMN transcoded_segments INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN transcoded_segments_duration REAL NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN transcoded_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN outgoing_rate REAL NOT NULL DEFAULT 0;
"""

#: Webhooks: endpoints (their secret in clear, since it signs every delivery), the outbox
#: of events (written in the transaction of the ledger change that caused each, only when
#: an enabled endpoint wants it; ``session``: the session as it was then, ``body``: the JSON
#: sent, fixed at the first attempt), one
#: delivery per endpoint and event, and every attempt of each.
_V_WEBHOOKS: Final = """
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT '',
    secret      TEXT NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,
    event      TEXT NOT NULL,
    created_at REAL NOT NULL,
    stream_id  TEXT,
    session_id TEXT,
    data       TEXT NOT NULL DEFAULT '{}',
    session    TEXT,
    body       TEXT
);
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id   TEXT NOT NULL,
    event_id     TEXT NOT NULL REFERENCES webhook_events (id),
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_state ON webhook_deliveries (state, webhook_id, id);
CREATE TABLE webhook_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    at          REAL NOT NULL,
    status_code INTEGER,
    latency     REAL NOT NULL,
    error       TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
"""

#: Reconnect windows: a session continued by its publisher's reconnects, its gaps, and
#: whether it is waiting for one now. A reconnecting session's ``status`` stays 'live' in
#: the row (the column's CHECK predates it) with ``reconnecting = 1``; storage/rows.py
#: maps the pair to the record's ``status``.
_V_RECONNECT: Final = """
ALTER TABLE sessions ADD COLUMN reconnects INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN gaps TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sessions ADD COLUMN gap_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN reconnecting INTEGER NOT NULL DEFAULT 0;
"""

#: Every migration, oldest first; the schema version is ``len(MIGRATIONS)``.
MIGRATIONS: Final[tuple[str, ...]] = (
    _V1,
    _V2,
    _V3,
    _V_MULTISTREAM,
    _V_RENDITIONS,
    _V_WEBHOOKS,
    _V_RECONNECT,
)

#: The version a fully migrated database reports in ``PRAGMA user_version``.
SCHEMA_VERSION: Final = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer version of this program."""


def split_statements(script: str) -> list[str]:
    """Split a script into single statements (``;`` inside strings and trigger bodies is
    handled by asking SQLite whether the text so far is a complete statement)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            text = pending.strip()
            if text.rstrip(";").strip():
                statements.append(text)
            pending = ""
    if pending.rstrip(";").strip():
        raise ValueError(f"incomplete SQL statement at the end of a script: {pending!r}")
    return statements


async def user_version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def migrate(conn: aiosqlite.Connection) -> int:
    """Apply every migration above the database's current version; return the version.

    ``conn`` must be in autocommit mode (``isolation_level=None``): the transactions here are
    explicit. Raises :class:`SchemaTooNew` for a database from a newer release.
    """
    if conn.isolation_level is not None:
        raise ValueError("migrate() needs a connection opened with isolation_level=None")
    current = await user_version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database schema version {current} is newer than this program's {SCHEMA_VERSION}"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        await conn.execute_fetchall("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while this one waited for the write lock.
            if await user_version(conn) < version:
                for statement in split_statements(MIGRATIONS[version - 1]):
                    await conn.execute_fetchall(statement)
                await conn.execute_fetchall(f"PRAGMA user_version = {version:d}")
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
    return await user_version(conn)
