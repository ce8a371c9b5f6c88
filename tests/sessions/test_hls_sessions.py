"""Live sessions become HLS (and recordings): real publishers in, ffprobe/PyAV checks out."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from bench.media import make_flv, read_flv_tags
from ingest.flv import parse_video
from storage.models import SessionRecord
from tests.support.media import publish_with_ffmpeg, publish_with_pyav
from tests.support.stack import Stack, start_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = await start_stack(tmp_path, hls=True)
    yield s
    await s.close()


async def _session(stack: Stack, *, recorded: bool = False) -> SessionRecord:
    """The one session, once it has ended (and its recording, if any, is settled)."""
    async with asyncio.timeout(60):
        while True:
            rows, _ = await stack.store.list_sessions()
            if (
                rows
                and rows[0].status == "ended"
                and (not recorded or rows[0].recording_status in ("ready", "failed"))
            ):
                return rows[0]
            await asyncio.sleep(0.1)


def _ends(source: Path) -> tuple[list[float], list[float]]:
    """(start, end) seconds of every video frame and AAC frame pushed."""
    video: list[float] = []
    audio: list[float] = []
    for tag in read_flv_tags(source):
        if tag.tag_type == 9:
            for packet in parse_video(tag.body, tag.timestamp):
                if packet.kind == "frame":
                    video += [packet.dts / 1000, packet.dts / 1000 + 1 / 30]
        elif tag.tag_type == 8 and tag.body[1:2] == b"\x01":
            audio += [tag.timestamp / 1000, tag.timestamp / 1000 + 1024 / 48000]
    return video, audio


def _video_span(source: Path) -> float:
    """Seconds of video pushed: first to last coded frame, plus one frame."""
    video, _ = _ends(source)
    return max(video) - min(video)


def _media_span(source: Path) -> float:
    """Seconds of media pushed: from the first frame of any track to the end of the
    last frame of any track."""
    video, audio = _ends(source)
    both = video + audio
    return max(both) - min(both)


def _first_video_frame_is_key(path: Path) -> bool:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "packet=flags", "-read_intervals", "%+#1", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    packets = json.loads(out.stdout)["packets"]
    return bool(packets) and packets[0]["flags"].startswith("K")


def _decodes(path: Path) -> bool:
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams[0]):
            return frame is not None
    return False


@pytest.mark.slow
@pytest.mark.parametrize(
    ("clip", "publisher"),
    [
        ({"video": "libx264", "audio": "aac"}, "ffmpeg"),
        ({"video": "libx265", "audio": "aac"}, "pyav"),
        ({"video": "libx264", "audio": None}, "ffmpeg"),
        ({"video": None, "audio": "aac"}, "ffmpeg"),
        ({"video": "libx264", "audio": "aac", "gop": 150}, "ffmpeg"),
    ],
    ids=["h264-aac", "hevc-aac", "video-only", "audio-only", "long-gop"],
)
async def test_published_stream_is_segmented_exactly(
    stack: Stack, tmp_path: Path, clip: dict[str, object], publisher: str
) -> None:
    stream, key = await stack.streams.create("cam")
    source = make_flv(tmp_path / "clip.flv", seconds=7, **clip)  # type: ignore[arg-type]
    push = publish_with_pyav if publisher == "pyav" else publish_with_ffmpeg
    assert await push(source, stack.url(key)) == 0
    session = await _session(stack)
    folder = stack.media_root / stream.playback_id / session.id
    segments = await stack.store.list_segments(session.id)

    assert session.source_segments == len(segments) >= 2
    assert session.source_segments_duration == pytest.approx(
        sum(s["duration"] for s in segments), abs=1e-6
    )
    assert session.source_bytes == sum(s["bytes"] for s in segments)
    frame = 1 / 30 if clip["video"] is not None else 1024 / 48000
    assert abs(session.source_segments_duration - _media_span(source)) <= frame + 1e-6
    playlist = (folder / "index.m3u8").read_text()
    assert playlist.rstrip().endswith("#EXT-X-ENDLIST")
    listed = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert listed == [s["uri"] for s in segments][-len(listed) :]
    for name in listed:
        path = folder / name
        if name.endswith(".m4s"):
            init = folder / "init.mp4"
            joined = tmp_path / f"joined-{name}.mp4"
            joined.write_bytes(init.read_bytes() + path.read_bytes())
            path = joined
        assert _decodes(path), name
        if clip["video"] is not None:
            assert _first_video_frame_is_key(path), name
    availability = stack.manager.segment_availability()
    assert availability is not None and 0 <= availability["p50"] <= availability["max"]
    if clip.get("gop") == 150:
        assert any(i["code"] == "keyframe_interval" for i in session.issues)
        assert not session.is_healthy
        assert all(s["duration"] > 4.9 for s in segments[:-1])


@pytest.mark.slow
async def test_recorded_session_gets_a_vod_playlist_and_an_mp4(
    stack: Stack, tmp_path: Path
) -> None:
    stream, key = await stack.streams.create("show", record=True)
    source = make_flv(tmp_path / "clip.flv", seconds=5, gop=30)
    assert await publish_with_ffmpeg(source, stack.url(key)) == 0
    session = await _session(stack, recorded=True)
    assert session.record and session.recording_status == "ready"
    folder = stack.media_root / stream.playback_id / session.id
    assert session.recording_url == (
        f"http://viewer.test/recordings/{stream.playback_id}/{session.id}/vod.m3u8"
    )
    assert session.mp4_url is not None and session.mp4_url.endswith("/recording.mp4")
    vod = (folder / "vod.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
    assert vod.count("#EXTINF") == session.source_segments
    with av.open(str(folder / "recording.mp4")) as mp4:
        assert mp4.duration is not None
        assert abs(mp4.duration / 1e6 - _video_span(source)) <= 1 / 30
        firsts: dict[str, float] = {}
        for packet in mp4.demux():
            if packet.pts is not None:
                firsts.setdefault(packet.stream.type, float(packet.pts * packet.time_base))
        assert abs(firsts["video"] - firsts["audio"]) <= 1024 / 48000


@pytest.mark.slow
async def test_recordings_past_retention_are_deleted(stack: Stack, tmp_path: Path) -> None:
    stream, key = await stack.streams.create("show", record=True)
    source = make_flv(tmp_path / "clip.flv", seconds=3)
    assert await publish_with_ffmpeg(source, stack.url(key)) == 0
    session = await _session(stack, recorded=True)
    folder = stack.media_root / stream.playback_id / session.id
    assert (folder / "recording.mp4").is_file()
    assert await stack.manager.sweep_recordings(1) == 0, "a fresh recording is kept"
    now = time.time()
    stack.manager.clock = lambda: now + 2 * 86400
    assert await stack.manager.sweep_recordings(1) == 1
    assert not folder.exists()
    swept = await stack.store.get_session(session.id)
    assert swept is not None
    assert swept.recording_status == "deleted"
    assert swept.recording_url is None and swept.mp4_url is None
    assert await stack.manager.sweep_recordings(1) == 0


@pytest.mark.slow
async def test_garbage_media_never_breaks_the_session_or_the_server(
    stack: Stack, tmp_path: Path
) -> None:
    """Random bytes as audio/video messages, mixed into a real stream: the session is
    recorded, the segmenter notes the problems, and the next publisher is unaffected."""
    import random

    from tests.support.rtmp_client import SocketPublisher

    rng = random.Random(7)
    stream, key = await stack.streams.create("cam")
    source = make_flv(tmp_path / "clip.flv", seconds=4)
    pub = await SocketPublisher.open(stack.rtmp.port, name=key)
    await pub.publish()
    for tag in read_flv_tags(source):
        if tag.tag_type not in (8, 9):
            continue
        body = tag.body if rng.random() < 0.7 else rng.randbytes(rng.randint(0, 300))
        send = pub.conn.send_video if tag.tag_type == 9 else pub.conn.send_audio
        send(tag.timestamp, body)
    pub.conn.unpublish()
    await pub.flush()
    session = await _session(stack)
    assert session.end_reason == "unpublished"
    assert session.media_bytes > 0
    pub.close()
    # The server and its segmenters still work for the next publisher.
    assert await publish_with_ffmpeg(source, stack.url(key)) == 0
    async with asyncio.timeout(30):
        while (await stack.store.list_sessions(status="ended"))[1] < 2:
            await asyncio.sleep(0.1)
    latest = (await stack.store.list_sessions())[0][0]
    assert latest.source_segments >= 1
    assert (stack.media_root / stream.playback_id / latest.id / "index.m3u8").is_file()


@pytest.mark.slow
async def test_a_kick_answers_after_the_end_is_stored(stack: Stack, tmp_path: Path) -> None:
    """With a segmenter to finish, the kick still returns only once the session reads as
    ended in the store."""
    from tests.support.media import start_ffmpeg

    stream, key = await stack.streams.create("cam")
    proc = await start_ffmpeg(
        make_flv(tmp_path / "clip.flv", seconds=20), stack.url(key), realtime=True, quiet=True
    )
    async with asyncio.timeout(15):
        while (live := stack.owner.live_session(stream.id)) is None:
            await asyncio.sleep(0.05)
    await asyncio.sleep(2.5)
    assert await stack.owner.kick(live.id)
    stored = await stack.store.get_session(live.id)
    assert stored is not None
    assert (stored.status, stored.end_reason) == ("ended", "kicked")
    assert stored.source_segments >= 1
    await proc.wait()
