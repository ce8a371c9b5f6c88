"""An unrecorded session's media is deleted once its players are done, also across a
crash; at start, folders no one may play are swept, live and recorded ones kept."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.media import make_flv
from sessions.media_cleanup import linger, session_folders, sweep_orphans
from sessions.playback import Playback
from sessions.segmenting import MediaSettings
from sessions.streams import Streams
from storage import Store
from storage.models import SessionRecord, StreamRecord
from tests.sessions.test_recording_recovery import kill, settled, stalled_at
from tests.support.media import publish_with_ffmpeg, start_ffmpeg
from tests.support.server import serve_config, start_server
from tests.support.stack import Stack, start_stack


def _playlist(folder: Path, durations: list[float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:5"]
    for i, duration in enumerate(durations):
        lines += [f"#EXTINF:{duration:.3f},", f"seg_{i:05d}.ts"]
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))


def test_the_delay_follows_the_last_window(tmp_path: Path) -> None:
    """A player that loaded the final playlist plays what it lists and reloads it up to a
    target duration late; never more than max_linger."""
    with ThreadPoolExecutor(1) as executor:
        settings = MediaSettings(tmp_path, executor, "http://viewer.test")
        _playlist(tmp_path / "a", [2.0] * 6)
        assert linger(tmp_path / "a", settings) == pytest.approx(14.0)
        _playlist(tmp_path / "b", [5.005] * 6)  # a long keyframe interval
        assert linger(tmp_path / "b", settings) == 30.0
        assert linger(tmp_path / "none", settings) == 2.0
        short = MediaSettings(tmp_path, executor, "http://viewer.test", max_linger=0.0)
        assert linger(tmp_path / "a", short) == 0.0


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = await start_stack(tmp_path, hls=True, max_linger=0.3)
    yield s
    await s.close()


async def _ended(stack: Stack, stream: StreamRecord, count: int) -> list[SessionRecord]:
    """The stream's sessions once ``count`` have ended with their recordings settled."""
    async with asyncio.timeout(60):
        while True:
            rows, _ = await stack.store.list_sessions(stream_id=stream.id, status="ended")
            if len(rows) >= count and all(
                not r.record or r.recording_status in ("ready", "failed") for r in rows
            ):
                return rows
            await asyncio.sleep(0.05)


async def _gone(path: Path) -> None:
    async with asyncio.timeout(60):
        while path.exists():
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_unrecorded_media_goes_after_the_delay_and_recordings_stay(
    stack: Stack, tmp_path: Path
) -> None:
    show, show_key = await stack.streams.create("show", record=True)
    cam, cam_key = await stack.streams.create("cam")
    clip = make_flv(tmp_path / "clip.flv", seconds=3, gop=30)
    assert await publish_with_ffmpeg(clip, stack.url(show_key)) == 0
    (recorded,) = await _ended(stack, show, 1)
    assert await publish_with_ffmpeg(clip, stack.url(cam_key)) == 0
    (first,) = await _ended(stack, cam, 1)
    first_folder = stack.media_root / cam.playback_id / first.id
    # The next session of the stream is live while the first one's media is deleted.
    publisher = await start_ffmpeg(
        make_flv(tmp_path / "long.flv", seconds=30), stack.url(cam_key), realtime=True
    )
    async with asyncio.timeout(30):
        while (live := stack.owner.live_session(cam.id)) is None or not list(
            (stack.media_root / cam.playback_id / live.id).glob("seg_*")
        ):
            await asyncio.sleep(0.05)
    await _gone(first_folder)

    playback = Playback(stack.store, stack.owner, stack.media_root, stack.manager.writes)
    assert (
        await playback.session_file(cam.playback_id, first.id, "index.m3u8", recording=False)
        is None
    )
    text = await playback.live_playlist(cam.playback_id)
    assert text is not None
    assert [line for line in text.splitlines() if line.endswith(".ts")] and all(
        line.startswith(f"{live.id}/") for line in text.splitlines() if line.endswith(".ts")
    )
    # The recording is untouched and still served.
    folder = stack.media_root / show.playback_id / recorded.id
    assert (folder / "recording.mp4").is_file() and (folder / "vod.m3u8").is_file()
    found = await playback.session_file(
        show.playback_id, recorded.id, "recording.mp4", recording=True
    )
    assert found is not None

    assert await stack.owner.kick(live.id)
    await publisher.wait()
    await _gone(stack.media_root / cam.playback_id / live.id)
    assert (stack.media_root / cam.playback_id).is_dir(), "the stream's folder stays"
    assert list(folder.iterdir())


@pytest.mark.slow
async def test_a_stop_deletes_what_waits_for_its_delay(tmp_path: Path) -> None:
    stack = await start_stack(tmp_path, hls=True)
    try:
        cam, key = await stack.streams.create("cam")
        clip = make_flv(tmp_path / "clip.flv", seconds=3, gop=30)
        assert await publish_with_ffmpeg(clip, stack.url(key)) == 0
        (session,) = await _ended(stack, cam, 1)
        folder = stack.media_root / cam.playback_id / session.id
        assert stack.manager.expiry is not None and stack.manager.expiry.pending == 1
    finally:
        await stack.close()
    assert not folder.exists()


@pytest.mark.slow
async def test_a_crash_before_the_delay_leaves_it_to_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 when an unrecorded session's media is about to be deleted (the state a
    crash before the delay leaves): the next start deletes it, and keeps the recording."""
    config = serve_config(tmp_path)
    with config.open("a") as fh:
        fh.write("[hls]\nmax_linger = 0.2\n")
    database = tmp_path / "data" / "rtmp-ingest.db"
    store = await Store.open(database)
    show, show_key = await Streams(store).create("show", record=True)
    cam, cam_key = await Streams(store).create("cam")
    await store.close()
    announce = tmp_path / "stalled-at"
    monkeypatch.setenv("STALL_AT", "delete")
    monkeypatch.setenv("STALL_ANNOUNCE", str(announce))
    server, port, _ = await start_server(config, module="tests.support.stalled")
    try:
        clip = make_flv(tmp_path / "clip.flv", seconds=3, gop=30)
        for key in (show_key, cam_key):
            assert await publish_with_ffmpeg(clip, f"rtmp://127.0.0.1:{port}/live/{key}") == 0
        folder = await stalled_at(announce)
    finally:
        await kill(server)
    assert folder.parent.name == cam.playback_id
    assert (folder / "index.m3u8").is_file() and list(folder.glob("seg_*.ts"))
    (recorded,) = (tmp_path / "data" / "media" / show.playback_id).iterdir()

    monkeypatch.delenv("STALL_AT")
    server, _, _ = await start_server(config)
    try:
        await _gone(folder)
        assert (await settled(database, recorded.name, "ready", "failed")).recording_status == (
            "ready"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 30) == 0
    assert folder.parent.is_dir(), "the stream's folder stays"
    assert (recorded / "recording.mp4").is_file() and list(recorded.glob("seg_*.ts"))


@pytest.mark.slow
async def test_retention_deletes_a_deleted_streams_recordings_too(
    stack: Stack, tmp_path: Path
) -> None:
    show, key = await stack.streams.create("show", record=True)
    assert await publish_with_ffmpeg(make_flv(tmp_path / "clip.flv"), stack.url(key)) == 0
    (session,) = await _ended(stack, show, 1)
    folder = stack.media_root / show.playback_id / session.id
    assert (folder / "recording.mp4").is_file()
    assert await stack.streams.delete(show.id)
    now = time.time()
    stack.manager.clock = lambda: now + 2 * 86400
    assert await stack.manager.sweep_recordings(1) == 1
    assert not folder.exists()


# -- the sweep at start --------------------------------------------------------------------


def _folder(root: Path, playback_id: str, session_id: str, *names: str) -> Path:
    folder = root / playback_id / session_id
    folder.mkdir(parents=True)
    for name in ("index.m3u8", "seg_00000.ts", *names):
        (folder / name).write_bytes(b"\x47" * 188)
    return folder


async def test_the_sweep_deletes_what_no_one_may_play(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "ledger.db")
    executor = ThreadPoolExecutor(max_workers=2)
    try:
        streams = Streams(store)
        cam, _ = await streams.create("cam")
        show, _ = await streams.create("show", record=True)
        gone, _ = await streams.create("gone")
        gone_rec, _ = await streams.create("gone-rec", record=True)
        root = tmp_path / "media"
        settings = MediaSettings(root, executor, "http://viewer.test")

        async def session(stream: StreamRecord, status: str = "ended", **fields: object) -> str:
            record = SessionRecord(
                id=str(uuid.uuid4()), stream_id=stream.id, name=stream.name,
                created_at=1000.0, last_seen=1001.0, updated_at=1001.0,
                status="live" if status == "live" else "ended",
                record=stream.record,
            )  # fmt: skip
            for name, value in fields.items():
                setattr(record, name, value)
            await store.insert_session(record)
            return record.id

        rec = ("vod.m3u8", "recording.mp4")
        kept = [
            _folder(root, cam.playback_id, await session(cam, "live")),
            _folder(root, show.playback_id, await session(show, recording_status="ready"), *rec),
            _folder(root, show.playback_id, await session(show, recording_status="waiting")),
            _folder(root, show.playback_id, await session(show, recording_status="failed")),
            # A recording the ledger does not know (say, restored from an older copy).
            _folder(root, cam.playback_id, str(uuid.uuid4()), "vod.m3u8"),
            # A deleted stream's recordings stay until their retention.
            _folder(
                root, gone_rec.playback_id, await session(gone_rec, recording_status="ready"), *rec
            ),
        ]
        not_ours = root / cam.playback_id / "notes"
        not_ours.mkdir()
        deleted = [
            _folder(root, cam.playback_id, await session(cam)),
            _folder(root, show.playback_id, await session(show, recording_status="deleted")),
            _folder(root, cam.playback_id, str(uuid.uuid4())),
            # A session filed under another stream's playback id.
            _folder(root, cam.playback_id, await session(show, recording_status="ready")),
            _folder(root, "0123456789abcdef", str(uuid.uuid4())),
            _folder(root, gone.playback_id, await session(gone)),
            _folder(root, gone_rec.playback_id, await session(gone_rec, record=False)),
        ]
        await streams.delete(gone.id)
        await streams.delete(gone_rec.id)

        listed = await asyncio.to_thread(session_folders, root)
        assert len(listed) == len(kept) + len(deleted)
        swept = await sweep_orphans(store, settings, listed)
        assert (swept.removed, swept.unknown_recordings) == (len(deleted), 1)
        assert [f for f in kept if not f.is_dir()] == []
        assert [f for f in deleted if f.exists()] == []
        assert not_ours.is_dir()
        # Playback folders of streams that no longer exist go once empty.
        assert not (root / "0123456789abcdef").exists()
        assert not (root / gone.playback_id).exists()
        assert (root / gone_rec.playback_id).is_dir()
        again = await sweep_orphans(store, settings, await asyncio.to_thread(session_folders, root))
        assert (again.removed, again.unknown_recordings) == (0, 1)
    finally:
        await store.close()
        executor.shutdown(wait=True)
