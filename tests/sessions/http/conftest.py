"""A real store and streams service behind the API, with a fake live-session manager."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ingest.config import Config, HttpConfig
from sessions.http import create_app
from sessions.streams import Streams
from storage import Store
from storage.models import SessionRecord

INGEST_URL = "rtmp://ingest.test/live"
TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: 2026-11-21T19:24:10.123Z
T0 = 1795289050.123


class FakeLive:
    """Stands in for the server's session manager."""

    def __init__(self) -> None:
        self.started_at = T0 - 100.0
        self.sessions: dict[str, SessionRecord] = {}
        self.kicked: list[str] = []

    def live_sessions(self) -> list[SessionRecord]:
        return list(self.sessions.values())

    def live_session(self, stream_id: str) -> SessionRecord | None:
        for session in self.sessions.values():
            if session.stream_id == stream_id:
                return session
        return None

    def total_ingest_rate(self) -> float:
        return sum(s.ingest_rate for s in self.sessions.values())

    async def kick(self, session_id: str) -> bool:
        if self.sessions.pop(session_id, None) is None:
            return False
        self.kicked.append(session_id)
        return True


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    streams: Streams
    live: FakeLive
    ready: list[bool] = field(default_factory=lambda: [True])

    async def get(self, url: str, **params: str | int | float) -> httpx.Response:
        return await self.client.get(url, params=params or None, headers=AUTH)

    async def post(self, url: str, json: object = None) -> httpx.Response:
        return await self.client.post(url, json=json, headers=AUTH)

    async def patch(self, url: str, json: object) -> httpx.Response:
        return await self.client.patch(url, json=json, headers=AUTH)

    async def delete(self, url: str) -> httpx.Response:
        return await self.client.delete(url, headers=AUTH)


def session_record(
    stream_id: str, session_id: str, *, created_at: float = T0, **fields: object
) -> SessionRecord:
    record = SessionRecord(
        id=session_id,
        stream_id=stream_id,
        name=f"session {session_id}",
        created_at=created_at,
        last_seen=created_at + 10.0,
        updated_at=created_at + 10.0,
    )
    for name, value in fields.items():
        setattr(record, name, value)
    return record


@contextlib.asynccontextmanager
async def serve_store(store: Store, config: Config | None = None) -> AsyncIterator[Api]:
    """The API over *store* (closed on exit), called in-process."""
    try:
        streams = Streams(store, clock=TickingClock(T0))
        live = FakeLive()
        ready = [True]
        app = create_app(
            store=store,
            streams=streams,
            live=live,
            config=config or Config(http=HttpConfig(public_rtmp_url=INGEST_URL)),
            admin_token=TOKEN,
            is_ready=lambda: ready[0],
            clock=lambda: T0,
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, store, streams, live, ready)
    finally:
        await store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_store(await Store.open(tmp_path / "ledger.db")) as served:
        yield served


class TickingClock:
    """Each reading is a millisecond after the last, so creation order is stable."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now
