"""Renditions in the real server, as an operator runs it: ``rtmp-ingest serve`` with two
RTMP worker processes, profiles set over its HTTP API, ffmpeg publishing, a player's
requests over real HTTP."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bench.media import make_flv
from tests.ingest.server.test_workers import TOKEN, Server, running
from tests.support.media import start_ffmpeg

pytestmark = pytest.mark.slow

PROFILES = [{"name": "180p", "width": 240, "height": 180, "bitrate": 300_000}]


async def _fetch(server: Server, path: str, body: Any = None) -> tuple[int, bytes]:
    def run() -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.http_port}{path}",
            data=data,
            method="GET" if body is None else "PATCH",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    return await asyncio.to_thread(run)


async def test_a_worker_process_s_session_is_adaptive(tmp_path: Path) -> None:
    clip = make_flv(tmp_path / "clip.flv", size=(320, 240), seconds=5, gop=30)
    async with running(tmp_path, 1, hls=True, extra="[transcode]\nmax_lag = 60.0\n") as (
        server,
        [(stream, key)],
    ):
        status, body = await _fetch(server, f"/api/streams/{stream.id}", {"profiles": PROFILES})
        assert status == 200, body
        publisher = await start_ffmpeg(
            clip, f"rtmp://127.0.0.1:{server.rtmp_port}/live/{key}", realtime=True
        )

        master = b""
        async with asyncio.timeout(30):
            while b"#EXT-X-STREAM-INF" not in master:
                assert publisher.returncode is None, "ended before the master appeared"
                status, master = await _fetch(server, f"/hls/{stream.playback_id}/index.m3u8")
                await asyncio.sleep(0.1)
        uris = [line for line in master.decode().splitlines() if not line.startswith("#")]
        session_id = uris[0].split("/")[0]
        assert uris == [f"{session_id}/index.m3u8", f"{session_id}/180p/index.m3u8"]
        status, playlist = await _fetch(server, f"/hls/{stream.playback_id}/{uris[1]}")
        assert status == 200
        segment = next(line for line in playlist.decode().splitlines() if line.endswith(".ts"))
        status, data = await _fetch(
            server, f"/hls/{stream.playback_id}/{session_id}/180p/{segment}"
        )
        assert status == 200 and data[:1] == b"\x47"  # an MPEG-TS sync byte

        assert await publisher.wait() == 0
        session = await server.wait_ended(session_id)
        assert session["profiles"] == [{**PROFILES[0], "fps": 0, "gop": None}]
        assert session["transcoded_segments"] == session["source_segments"] == 3
        assert session["renditions"][0]["segments"] == 3
        assert session["transcoded_bytes"] == session["renditions"][0]["bytes"] > 0
        assert session["is_healthy"] and session["issues"] == []
        async with asyncio.timeout(10):
            while (await server.session(session_id))["viewer_seconds"] <= 0:
                await asyncio.sleep(0.1)
