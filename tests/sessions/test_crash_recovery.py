"""``kill -9`` of the server mid-session, then a restart: nothing recorded is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import av
import pytest

from bench.media import make_flv
from sessions.streams import Streams
from storage import Store
from tests.support.events import events
from tests.support.media import start_ffmpeg
from tests.support.server import serve_config, start_server


@pytest.mark.slow
async def test_server_killed_mid_session_recovers_it_as_server_restart(tmp_path: Path) -> None:
    config = serve_config(tmp_path)
    database = tmp_path / "data" / "rtmp-ingest.db"
    store = await Store.open(database)
    stream, key = await Streams(store).create("cam", record=True)
    await store.close()

    server, port, _ = await start_server(config)
    source = make_flv(tmp_path / "clip.flv", seconds=30)
    publisher = await start_ffmpeg(
        source, f"rtmp://127.0.0.1:{port}/live/{key}", realtime=True, quiet=True
    )
    await asyncio.sleep(3.0)
    os.kill(server.pid, signal.SIGKILL)
    killed_at = time.time()
    await server.wait()
    await asyncio.wait_for(publisher.wait(), 20)  # the publisher sees the socket die

    restarted, _, _ = await start_server(config)
    restarted.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(restarted.wait(), 20) == 0

    store = await Store.open(database)
    try:
        assert await store.integrity_check() == "ok"
        (session,), total = await store.list_sessions()
        assert total == 1
        assert session.stream_id == stream.id
        assert session.status == "ended"
        assert session.end_reason == "server_restart"
        assert session.ended_at is not None
        assert killed_at - 2.0 <= session.ended_at <= killed_at
        assert session.duration > 1.5
        assert session.bytes_received > 0
        kinds = {e.kind for e in await events(store)}
        assert {"publish_accepted", "session_started"} <= kinds
        # Every segment finished before the crash is on disk and in the ledger, and the
        # recording was finished at the restart: playlists closed, MP4 made.
        folder = tmp_path / "data" / "media" / stream.playback_id / session.id
        segments = await store.list_segments(session.id)
        assert len(segments) >= 1
        assert all((folder / s["uri"]).is_file() for s in segments)
        for name in ("index.m3u8", "vod.m3u8"):
            assert (folder / name).read_text().rstrip().endswith("#EXT-X-ENDLIST")
        # The segment being written when the server died is gone with the other leftovers.
        assert not list(folder.glob("*.tmp"))
        vod = (folder / "vod.m3u8").read_text()
        assert [line for line in vod.splitlines() if line.endswith(".ts")] == [
            s["uri"] for s in segments
        ]
        assert session.recording_status == "ready"
        with av.open(str(folder / "recording.mp4")) as mp4:
            assert mp4.duration is not None
            assert abs(mp4.duration / 1e6 - sum(s["duration"] for s in segments)) < 0.1
    finally:
        await store.close()


@pytest.mark.slow
async def test_a_session_reconnecting_at_the_crash_is_recovered_like_a_live_one(
    tmp_path: Path,
) -> None:
    """The encoder dropped (its session waits for it: reconnecting), then the server is
    killed: at the restart the session is ended as server_restart at its last packet,
    its playlists closed and its recording made, as a live one's."""
    config = serve_config(tmp_path, reconnect_window=120.0)
    database = tmp_path / "data" / "rtmp-ingest.db"
    store = await Store.open(database)
    stream, key = await Streams(store).create("cam", record=True)
    await store.close()

    server, port, _ = await start_server(config)
    source = make_flv(tmp_path / "clip.flv", seconds=30)
    publisher = await start_ffmpeg(
        source, f"rtmp://127.0.0.1:{port}/live/{key}", realtime=True, quiet=True
    )
    await asyncio.sleep(3.0)
    os.kill(publisher.pid, signal.SIGKILL)
    await publisher.wait()
    store = await Store.open(database)
    try:
        async with asyncio.timeout(15):
            while not (await store.list_sessions(status="reconnecting"))[0]:
                await asyncio.sleep(0.1)
        (waiting,), _ = await store.list_sessions(status="reconnecting")
    finally:
        await store.close()
    os.kill(server.pid, signal.SIGKILL)
    await server.wait()

    restarted, _, _ = await start_server(config)
    restarted.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(restarted.wait(), 20) == 0

    store = await Store.open(database)
    try:
        (session,), total = await store.list_sessions()
        assert total == 1 and session.id == waiting.id
        assert (session.status, session.end_reason) == ("ended", "server_restart")
        assert session.ended_at == waiting.last_seen
        assert (await store.list_sessions(status="reconnecting"))[1] == 0
        folder = tmp_path / "data" / "media" / stream.playback_id / session.id
        for name in ("index.m3u8", "vod.m3u8"):
            assert (folder / name).read_text().rstrip().endswith("#EXT-X-ENDLIST")
        assert session.recording_status == "ready"
        assert (folder / "recording.mp4").is_file()
    finally:
        await store.close()
