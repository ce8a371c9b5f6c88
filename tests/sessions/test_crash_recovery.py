"""``kill -9`` of the server mid-session, then a restart: nothing recorded is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from bench.media import make_flv
from sessions.streams import Streams
from storage import Store
from tests.support.media import start_ffmpeg
from tests.test_cli import _config, _start_server


async def test_server_killed_mid_session_recovers_it_as_server_restart(tmp_path: Path) -> None:
    config = _config(tmp_path)
    database = tmp_path / "data" / "rtmp-ingest.db"
    store = await Store.open(database)
    stream, key = await Streams(store).create("cam")
    await store.close()

    server, port, _ = await _start_server(config)
    source = make_flv(tmp_path / "clip.flv", seconds=30)
    publisher = await start_ffmpeg(
        source, f"rtmp://127.0.0.1:{port}/live/{key}", realtime=True, quiet=True
    )
    await asyncio.sleep(3.0)
    os.kill(server.pid, signal.SIGKILL)
    killed_at = time.time()
    await server.wait()
    await asyncio.wait_for(publisher.wait(), 20)  # the publisher sees the socket die

    restarted, _, _ = await _start_server(config)
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
        kinds = {e.kind for e in await store.list_events()}
        assert {"publish_accepted", "session_started"} <= kinds
    finally:
        await store.close()
