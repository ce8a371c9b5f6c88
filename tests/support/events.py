"""The event log read back for the tests (the server only writes it: publish attempts,
refusals, session starts and ends)."""

from __future__ import annotations

import asyncio
import sqlite3

from storage import EventRecord, Store


async def events(store: Store, *, limit: int = 100) -> list[EventRecord]:
    """The newest ``limit`` events of ``store``'s database, newest first."""

    def read() -> list[EventRecord]:
        conn = sqlite3.connect(store.path)
        try:
            rows = conn.execute(
                "SELECT id, at, kind, stream_id, session_id, remote_addr, reason FROM events"
                " ORDER BY at DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        finally:
            conn.close()
        return [EventRecord(*row) for row in rows]

    return await asyncio.to_thread(read)
