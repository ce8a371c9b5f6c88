"""Real publishers, then the operators' API: what it reports is what was streamed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bench.media import make_flv
from ingest.config import Config
from sessions.http import create_app
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.stack import Stack, start_stack

AUTH = {"Authorization": "Bearer e2e-token"}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = await start_stack(tmp_path)
    yield s
    await s.close()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        store=stack.store,
        streams=stack.streams,
        live=stack.owner,
        config=Config(),
        admin_token="e2e-token",
        is_ready=lambda: True,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def _until(predicate: object, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_publish_then_read_the_session_over_the_api(
    stack: Stack, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    created = (await api.post("/api/streams", json={"name": "studio"}, headers=AUTH)).json()
    key = created["stream_key"]
    source = make_flv(tmp_path / "clip.flv", seconds=2, size=(640, 360))
    publisher = asyncio.ensure_future(publish_with_ffmpeg(source, stack.url(key), realtime=True))

    async def is_live() -> bool:
        r = await api.get(f"/api/streams/{created['id']}/sessions/active", headers=AUTH)
        return r.status_code == 200

    await _until(is_live)
    stream = (await api.get(f"/api/streams/{created['id']}", headers=AUTH)).json()
    assert stream["status"] == "live" and stream["is_active"] is True
    assert await publisher == 0

    async def has_ended() -> bool:
        r = await api.get("/api/sessions", params={"status": "ended"}, headers=AUTH)
        return bool(r.json()["total"])

    await _until(has_ended)
    page = (await api.get("/api/sessions", headers=AUTH)).json()
    assert page["total"] == 1
    (session,) = page["items"]
    assert session["stream_id"] == created["id"]
    assert session["playback_id"] == created["playback_id"]
    assert session["end_reason"] == "unpublished"
    assert session["ended_at"].endswith("Z")
    assert abs(session["duration"] - 2.0) < 0.3
    video = next(t for t in session["tracks"] if t["kind"] == "video")
    assert (video["codec"], video["width"], video["height"]) == ("h264", 640, 360)
    analytics = (await api.get("/api/analytics", headers=AUTH)).json()
    assert analytics["count"] == 1
    assert analytics["total_bytes"] == session["bytes_received"]
    assert analytics["total_ingest_seconds"] == pytest.approx(session["ingest_seconds"])
    everything = str(page) + str(analytics) + str(stream)
    assert key not in everything


@pytest.mark.slow
@pytest.mark.parametrize("action", ["kick", "disable"])
async def test_kick_and_disable_through_the_api(
    stack: Stack, api: httpx.AsyncClient, tmp_path: Path, action: str
) -> None:
    created = (await api.post("/api/streams", json={"name": "cam"}, headers=AUTH)).json()
    source = make_flv(tmp_path / "clip.flv", seconds=20)
    proc = await start_ffmpeg(source, stack.url(created["stream_key"]), realtime=True, quiet=True)
    active: dict[str, object] = {}

    async def is_live() -> bool:
        r = await api.get(f"/api/streams/{created['id']}/sessions/active", headers=AUTH)
        active.update(r.json())
        return r.status_code == 200

    await _until(is_live)
    if action == "kick":
        r = await api.post(f"/api/sessions/{active['id']}/kick", headers=AUTH)
    else:
        r = await api.post(f"/api/streams/{created['id']}/disable", headers=AUTH)
    assert r.status_code == 200
    assert await asyncio.wait_for(proc.wait(), 10) != 0
    session = (await api.get(f"/api/sessions/{active['id']}", headers=AUTH)).json()
    assert session["status"] == "ended"
    assert session["end_reason"] == ("kicked" if action == "kick" else "key_disabled")
    again = await api.post(f"/api/sessions/{active['id']}/kick", headers=AUTH)
    assert again.status_code == 409
