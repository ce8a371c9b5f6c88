"""The reconnect window with worker processes (``[rtmp] processes = 2``): a publisher that
reconnects on the other worker still continues its session.

Which worker the kernel hands a connection to is its choice, so each test reconnects
until one reconnect lands on the other worker (each try has an even chance), and reads
from ``/api/status`` which worker holds the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.media import make_flv
from tests.ingest.server.test_workers import MAX_TRIES, Server, _publish, running
from tests.sessions.hls.media import parse_playlist
from tests.support.media import start_ffmpeg

pytestmark = pytest.mark.slow


async def _status_of(server: Server, session_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while (session := await server.session(session_id))["status"] != status:
            await asyncio.sleep(0.05)
    return session


async def test_a_reconnect_on_the_other_worker_continues_the_session(tmp_path: Path) -> None:
    async with running(tmp_path, 1, reconnect_window=10.0) as (server, [(stream, key)]):
        publisher = await _publish(server, key)
        first = await server.live_of(stream.id)
        holder = await server.holder(stream.id)
        sent = [publisher]
        holders = [holder]
        for _ in range(MAX_TRIES):
            await asyncio.sleep(0.2)
            publisher.abort()
            waiting = await _status_of(server, first["id"], "reconnecting")
            assert waiting["ingest_rate"] == 0
            assert (await server.call("GET", f"/api/streams/{stream.id}"))[
                "status"
            ] == "reconnecting"
            publisher = await _publish(server, key)
            sent.append(publisher)
            assert (await server.live_of(stream.id))["id"] == first["id"]
            holders.append(await server.holder(stream.id))
            if holders[-1] != holders[0]:
                break
        else:
            raise AssertionError("every reconnect went to the same worker")
        publisher.conn.unpublish()
        await publisher.flush()
        session = await server.wait_ended(first["id"])
        publisher.close()
    assert session["end_reason"] == "unpublished"
    reconnects = len(sent) - 1
    assert session["reconnects"] == reconnects and len(session["gaps"]) == reconnects
    assert session["gap_seconds"] == pytest.approx(
        sum(gap["seconds"] for gap in session["gaps"]), abs=0.01
    )
    assert session["ingest_seconds"] == pytest.approx(
        session["duration"] - session["gap_seconds"], abs=0.01
    )
    # Every part's bytes, whichever worker read them.
    assert session["bytes_received"] == sum(p.bytes_sent for p in sent)
    (video, audio) = session["tracks"]
    assert video["frames"] == audio["frames"] == 3 * len(sent)


async def test_an_ffmpeg_reconnect_on_the_other_worker_continues_the_media(
    tmp_path: Path,
) -> None:
    """With HLS and a recording: the worker that takes the reconnect continues the
    playlists the other left; the window then passes and the main process ends the
    session and makes its one MP4."""
    async with running(tmp_path, 1, hls=True, record=True, reconnect_window=3.0) as (
        server,
        [(stream, key)],
    ):
        clip = make_flv(tmp_path / "clip.flv", seconds=30)
        url = f"rtmp://127.0.0.1:{server.rtmp_port}/live/{key}"
        encoder = await start_ffmpeg(clip, url, realtime=True, quiet=True)
        first = await server.live_of(stream.id)
        holders = [await server.holder(stream.id)]
        try:
            for _ in range(MAX_TRIES):
                await asyncio.sleep(2.5)  # a segment or so
                os.kill(encoder.pid, signal.SIGKILL)
                await encoder.wait()
                await _status_of(server, first["id"], "reconnecting")
                encoder = await start_ffmpeg(clip, url, realtime=True, quiet=True)
                await _status_of(server, first["id"], "live")
                holders.append(await server.holder(stream.id))
                if holders[-1] != holders[0]:
                    break
            else:
                raise AssertionError("every reconnect went to the same worker")
            await asyncio.sleep(2.5)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(encoder.pid, signal.SIGKILL)
            await encoder.wait()
        await _status_of(server, first["id"], "reconnecting")
        session = await server.wait_ended(first["id"])
        async with asyncio.timeout(30):  # made by the main process
            while (session := await server.session(first["id"]))["recording_status"] not in (
                "ready",
                "failed",
            ):
                await asyncio.sleep(0.1)
    reconnects = len(holders) - 1
    assert session["end_reason"] == "disconnected"  # the window passed
    assert session["reconnects"] == reconnects
    assert session["recording_status"] == "ready"
    folder = server.data_dir / "media" / stream.playback_id / first["id"]
    live = parse_playlist(folder / "index.m3u8")
    assert live.endlist
    vod = parse_playlist(folder / "vod.m3u8")
    assert vod.endlist and len(vod.discontinuities) == reconnects
    numbers = [int(uri.split("_")[1].split(".")[0]) for _, uri in vod.segments]
    assert numbers == list(range(len(numbers)))
    parts = sum(duration for duration, _ in vod.segments)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(folder / "recording.mp4")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert abs(float(probe.stdout) - parts) < 0.2
