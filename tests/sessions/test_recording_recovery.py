"""``kill -9`` while a recording's MP4 is being made, and again while the next start makes
it: every recording left ``waiting`` is made (or ``failed``, saying why) at the next
start, once, in the background, and no temporary is left."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from bench.media import make_flv
from sessions.manager import SessionManager
from sessions.owner import StreamOwner
from sessions.segmenting import MediaSettings
from sessions.streams import Streams
from sessions.webhooks.endpoints import Webhooks
from storage import Store
from storage.models import SessionRecord, StreamRecord
from tests.sessions.test_recording import _hls
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.recorder import AllowAll
from tests.support.server import serve_config, start_server

STALLED = "tests.support.stalled"


@dataclass
class Killed:
    """What a server killed while making a recording left."""

    config: Path
    database: Path
    stream: StreamRecord
    session_id: str
    folder: Path


async def settled(database: Path, session_id: str, *states: str) -> SessionRecord:
    """The session once its recording_status is one of ``states`` (read while the server
    runs: the store is in WAL mode)."""
    store = await Store.open(database)
    try:
        async with asyncio.timeout(60):
            while True:
                session = await store.get_session(session_id)
                if session is not None and session.recording_status in states:
                    return session
                await asyncio.sleep(0.1)
    finally:
        await store.close()


async def stalled_at(announce: Path) -> Path:
    """The folder a stalled server announces once it reaches its stall."""
    async with asyncio.timeout(60):
        while not announce.exists() or not announce.read_text():
            await asyncio.sleep(0.05)
    return Path(announce.read_text())


async def kill(server: asyncio.subprocess.Process) -> None:
    os.kill(server.pid, signal.SIGKILL)
    await server.wait()


@pytest.fixture
def stall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Servers started with the stalled module stop at the remux; returns the file they
    announce it in."""
    announce = tmp_path / "stalled-at"
    monkeypatch.setenv("STALL_AT", "remux")
    monkeypatch.setenv("STALL_ANNOUNCE", str(announce))
    yield announce


async def _killed_while_remuxing(tmp_path: Path, announce: Path) -> Killed:
    """A recorded session published with ffmpeg, its server killed by kill -9 while it
    made the MP4 (after the session's end was stored)."""
    config = serve_config(tmp_path)
    database = tmp_path / "data" / "rtmp-ingest.db"
    store = await Store.open(database)
    stream, key = await Streams(store).create("show", record=True)
    await store.close()
    announce.unlink(missing_ok=True)
    server, port, _ = await start_server(config, module=STALLED)
    try:
        clip = make_flv(tmp_path / "clip.flv", seconds=4, gop=30)
        assert await publish_with_ffmpeg(clip, f"rtmp://127.0.0.1:{port}/live/{key}") == 0
        folder = await stalled_at(announce)
        session = await settled(database, folder.name, "waiting")
        assert session.status == "ended"
    finally:
        await kill(server)
    # What the kill left: the MP4 under its temporary name, the session waiting for it.
    assert (folder / "recording.mp4.tmp").stat().st_size > 0
    assert not (folder / "recording.mp4").exists()
    return Killed(config, database, stream, folder.name, folder)


async def _check_recording(killed: Killed) -> None:
    session = await settled(killed.database, killed.session_id, "ready", "failed")
    assert session.recording_status == "ready", session.err_message
    assert session.mp4_url is not None and session.mp4_url.endswith(
        f"/recordings/{killed.stream.playback_id}/{killed.session_id}/recording.mp4"
    )
    assert not list(killed.folder.glob("*.tmp"))
    store = await Store.open(killed.database)
    try:
        segments = await store.list_segments(killed.session_id)
    finally:
        await store.close()
    assert len(segments) >= 2
    with av.open(str(killed.folder / "recording.mp4")) as mp4:
        assert mp4.duration is not None
        assert abs(mp4.duration / 1e6 - sum(s["duration"] for s in segments)) < 0.1
        assert {s.type for s in mp4.streams} == {"video", "audio"}
        frames = sum(1 for _ in mp4.decode(video=0))
    assert frames >= 30 * 4 - 1


async def _stop(server: asyncio.subprocess.Process) -> str:
    server.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.wait(), 30) == 0
    assert server.stderr is not None
    return (await server.stderr.read()).decode()


@pytest.mark.slow
async def test_kill_during_the_remux_then_the_next_start_makes_the_mp4(
    tmp_path: Path, stall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = await _killed_while_remuxing(tmp_path, stall)
    monkeypatch.delenv("STALL_AT")
    server, _, _ = await start_server(killed.config)
    await _check_recording(killed)
    logs = await _stop(server)
    assert f"event=recording_resumed session={killed.session_id}" in logs


@pytest.mark.slow
async def test_kill_again_while_the_start_remakes_it_then_it_is_made(
    tmp_path: Path, stall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = await _killed_while_remuxing(tmp_path, stall)
    # The next start remakes it in the background: the server is ready (it printed its
    # addresses) while the remux is stalled, and is killed there.
    stall.unlink()
    server, _, _ = await start_server(killed.config, module=STALLED)
    try:
        assert await stalled_at(stall) == killed.folder
    finally:
        await kill(server)
    folder = killed.folder
    assert (folder / "recording.mp4.tmp").exists()
    assert (await settled(killed.database, killed.session_id, "waiting")).status == "ended"
    monkeypatch.delenv("STALL_AT")
    server, _, _ = await start_server(killed.config)
    await _check_recording(killed)
    await _stop(server)


@pytest.mark.slow
async def test_with_worker_processes_the_main_process_makes_it_once(
    tmp_path: Path, stall: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = await _killed_while_remuxing(tmp_path, stall)
    store = await Store.open(killed.database)
    cam, key = await Streams(store).create("cam")
    await store.close()
    monkeypatch.delenv("STALL_AT")
    monkeypatch.setenv("RTMP_INGEST_RTMP_PROCESSES", "2")
    server, port, _ = await start_server(killed.config)
    publisher = await start_ffmpeg(
        make_flv(tmp_path / "long.flv", seconds=30),
        f"rtmp://127.0.0.1:{port}/live/{key}",
        realtime=True,
        quiet=True,
    )
    try:
        await _check_recording(killed)
        # A worker's live session keeps its media.
        live_root = killed.folder.parent.parent / cam.playback_id
        async with asyncio.timeout(30):
            while not list(live_root.glob("*/seg_*")):
                await asyncio.sleep(0.1)
        (live,) = list(live_root.iterdir())
        await asyncio.sleep(0.5)
        assert (live / "index.m3u8").is_file()
    finally:
        logs = await _stop(server)
        await asyncio.wait_for(publisher.wait(), 20)
    # The main process made it; the workers, which do not recover, did not make it again.
    assert logs.count(f"event=recording_ready session={killed.session_id}") == 1
    assert logs.count(f"event=recording_resumed session={killed.session_id}") == 1


# -- recordings that cannot be made --------------------------------------------------------


async def _waiting_session(store: Store, stream: StreamRecord, session_id: str) -> None:
    """An ended recorded session still waiting for its MP4 (as a kill leaves it)."""
    record = SessionRecord(
        id=session_id, stream_id=stream.id, name=stream.name, created_at=1000.0,
        last_seen=1004.0, updated_at=1004.0, status="ended", ended_at=1004.0,
        end_reason="unpublished", record=True, recording_status="waiting",
    )  # fmt: skip
    await store.insert_session(record)


@pytest.mark.slow
async def test_a_recording_that_cannot_be_made_fails_with_a_message(tmp_path: Path) -> None:
    """One session's folder is gone, another's has segments but no vod.m3u8 (and a
    half-made MP4): both become ``failed`` saying why, the temporary is removed, and a
    third, intact one is made."""
    store = await Store.open(tmp_path / "ledger.db")
    executor = ThreadPoolExecutor(max_workers=2)
    try:
        stream, _ = await Streams(store).create("show", record=True)
        root = tmp_path / "media"
        settings = MediaSettings(root, executor, "http://viewer.test")
        ids = ["00000000-0000-4000-8000-00000000000" + c for c in "abc"]
        for session_id in ids:
            await _waiting_session(store, stream, session_id)
        missing, no_playlist, intact = (settings.folder(stream.playback_id, i) for i in ids)
        # Real HLS, its playlist unfinished as a crash leaves it.
        await asyncio.to_thread(_hls, intact, 3.0)
        vod = intact / "vod.m3u8"
        vod.write_text(vod.read_text().replace("#EXT-X-ENDLIST\n", ""))
        shutil.copytree(intact, no_playlist)
        (no_playlist / "vod.m3u8").unlink()
        (no_playlist / "recording.mp4.tmp").write_bytes(b"\0" * 1000)
        (intact / "recording.mp4.tmp").write_bytes(b"\0" * 1000)

        hook = await Webhooks(store).create(
            "http://127.0.0.1:1/", ["recording.ready", "recording.failed"]
        )
        manager = SessionManager(store, StreamOwner(AllowAll()), media=settings)
        await manager.start()
        try:
            async with asyncio.timeout(60):
                while await store.sessions_awaiting_recording():
                    await asyncio.sleep(0.05)
        finally:
            await manager.close()
        # Each outcome is a webhook event, written with the session's status.
        events = {d.session_id: d for d in await store.pending_deliveries(hook.id)}
        assert {i: d.event for i, d in events.items()} == {
            missing.name: "recording.failed",
            no_playlist.name: "recording.failed",
            intact.name: "recording.ready",
        }
        kept = events[missing.name].session
        assert kept is not None and kept.recording_status == "failed"

        by_id = {s.id: s for s in await store.get_sessions(ids)}
        assert by_id[missing.name].recording_status == "failed"
        assert by_id[missing.name].err_message == (
            "recording: the session's media folder is missing"
        )
        assert by_id[no_playlist.name].recording_status == "failed"
        assert by_id[no_playlist.name].err_message == "recording: vod.m3u8 is missing"
        assert not list(no_playlist.glob("*.tmp"))
        assert by_id[intact.name].recording_status == "ready"
        assert not list(intact.glob("*.tmp"))
        with av.open(str(intact / "recording.mp4")) as mp4:
            assert mp4.duration is not None and mp4.duration > 2_500_000
    finally:
        await store.close()
        executor.shutdown(wait=True)
