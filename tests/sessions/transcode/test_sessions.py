"""Renditions of live sessions, end to end: a real publisher (the ``ffmpeg`` command line,
or PyAV for HEVC, which this ffmpeg cannot put in FLV) pushes to a stream with profiles;
the server's own stack (``build_sessions``) transcodes in its worker processes; players'
URLs are read over the HTTP app, the files with ffprobe, the ledger from the store."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bench.media import make_flv
from ingest.config import Config, TranscodeConfig
from ingest.profiles import Profile
from sessions.http import create_app
from sessions.playback import Playback
from sessions.recording import ENDLIST
from sessions.transcode.pool import TranscodePool, TranscodeSettings
from storage.models import SessionRecord
from tests.sessions.hls.media import parse_playlist
from tests.support.events import events
from tests.support.media import publish_with_pyav, start_ffmpeg
from tests.support.stack import Stack, start_stack

from .late_clock import LATE_FILE_ENV
from .late_clock import clock as late_clock
from .media import first_video_pts, playlist_segments, streams, video_packets

pytestmark = pytest.mark.slow

TOKEN = "renditions-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FRAME = 1 / 30
LADDER = [Profile("360p", 640, 360, 800_000), Profile("240p", 426, 240, 400_000)]
#: A rendition of the small clips (320x240).
SMALL = Profile("180p", 240, 180, 300_000)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """720p30 H.264+AAC (camera-like noise, 2 s GOP, 5 s) and small clips."""
    base = tmp_path_factory.mktemp("session-clips")
    return {
        "720p": make_flv(base / "720p.flv", size=(1280, 720), seconds=5, gop=60, bitrate=2_400_000),
        "small": make_flv(base / "small.flv", size=(320, 240), seconds=5, gop=30),
        "hevc": make_flv(base / "hevc.flv", video="libx265", size=(320, 240), seconds=4, gop=30),
    }


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    # A generous max_lag: this shared 2-core machine must not drop frames in these
    # tests (falling behind is tested with the engine, where time is controlled).
    s = await start_stack(tmp_path, hls=True, transcode=TranscodeConfig(max_lag=60.0))
    yield s
    await s.close()


@pytest.fixture
def playback(stack: Stack) -> Playback:
    return Playback(stack.store, stack.owner, stack.media_root, stack.manager.writes)


@pytest.fixture
async def api(stack: Stack, playback: Playback) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        store=stack.store,
        streams=stack.streams,
        live=stack.owner,
        config=Config(),
        admin_token=TOKEN,
        is_ready=lambda: True,
        playback=playback,
        playback_base="http://viewer.test",
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://viewer.test") as client:
        yield client


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def ended(stack: Stack, count: int = 1) -> list[SessionRecord]:
    found: list[SessionRecord] = []

    async def check() -> bool:
        nonlocal found
        rows, _ = await stack.store.list_sessions(limit=100)
        found = [r for r in rows if r.status == "ended"]
        return len(found) >= count

    await until(check)
    return found


def master_variants(text: str) -> list[tuple[dict[str, str], str]]:
    """(attributes, URI) of each #EXT-X-STREAM-INF of a master playlist."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes: dict[str, str] = {}
            for part in _split_attributes(line.split(":", 1)[1]):
                key, _, value = part.partition("=")
                attributes[key] = value.strip('"')
            found.append((attributes, lines[index + 1]))
    return found


def _split_attributes(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


async def test_a_720p_publish_with_two_profiles_is_an_adaptive_stream_and_a_recording(
    stack: Stack, api: httpx.AsyncClient, playback: Playback, clips: dict[str, Path]
) -> None:
    stream, key = await stack.streams.create("ladder", record=True, profiles=LADDER)
    publisher = await start_ffmpeg(clips["720p"], stack.url(key), realtime=True)

    # While live, the stream's URL is a master playlist of three variants.
    live_master: list[str] = []

    async def adaptive() -> bool:
        answer = await api.get(f"/hls/{stream.playback_id}/index.m3u8")
        if answer.status_code == 200 and "#EXT-X-STREAM-INF" in answer.text:
            live_master.append(answer.text)
            return True
        assert publisher.returncode is None, "the publish ended before the master appeared"
        return False

    await until(adaptive, timeout=30)
    variants = master_variants(live_master[0])
    session_id = variants[0][1].split("/")[0]
    assert [uri for _, uri in variants] == [
        f"{session_id}/index.m3u8",
        f"{session_id}/360p/index.m3u8",
        f"{session_id}/240p/index.m3u8",
    ]
    assert [a["RESOLUTION"] for a, _ in variants] == ["1280x720", "640x360", "426x240"]
    for attributes, _ in variants:
        assert set(attributes) >= {
            "BANDWIDTH",
            "AVERAGE-BANDWIDTH",
            "RESOLUTION",
            "FRAME-RATE",
            "CODECS",
        }
        assert attributes["CODECS"].startswith("avc1.") and attributes["CODECS"].endswith(
            ",mp4a.40.2"
        )
        assert int(attributes["BANDWIDTH"]) >= int(attributes["AVERAGE-BANDWIDTH"]) > 0
    # A player follows it: the rendition's playlist and a segment of it are served, and
    # the segment counts as viewer seconds.
    rendition = await api.get(f"/hls/{stream.playback_id}/{variants[1][1]}")
    assert rendition.status_code == 200
    first = next(line for line in rendition.text.splitlines() if line.endswith(".ts"))
    segment = await api.get(f"/hls/{stream.playback_id}/{session_id}/360p/{first}")
    assert segment.status_code == 200 and segment.headers["content-type"] == "video/mp2t"
    seen = float(next(line for line in rendition.text.splitlines() if "#EXTINF" in line)[8:-1])

    assert await publisher.wait() == 0
    (session,) = await ended(stack)
    assert session.id == session_id and session.end_reason == "unpublished"
    folder = stack.media_root / stream.playback_id / session.id

    # Each rendition: its profile's size, H.264, the source's audio, its bit rate.
    source = playlist_segments(folder, "source.m3u8")
    assert len(source) == session.source_segments >= 2
    counted_bytes = 0
    for profile in LADDER:
        listed = playlist_segments(folder / profile.name)
        assert len(listed) == len(source)
        video_bytes = 0
        for (_, uri), (_, source_uri) in zip(listed, source, strict=True):
            found = {s["codec_type"]: s for s in streams(folder / profile.name / uri)}
            assert found["video"]["codec_name"] == "h264"
            assert (found["video"]["width"], found["video"]["height"]) == (
                profile.width,
                profile.height,
            )
            assert found["audio"]["codec_name"] == "aac"
            video_bytes += sum(int(p["size"]) for p in video_packets(folder / profile.name / uri))
            # Segment N of the rendition starts where the source's does (within a frame).
            ours = first_video_pts(folder / profile.name / uri)
            theirs = first_video_pts(folder / source_uri)
            assert abs(ours - theirs) <= FRAME, (profile.name, uri, ours, theirs)
        rate = video_bytes * 8 / sum(d for d, _ in listed)
        assert abs(rate - profile.bitrate) <= 0.25 * profile.bitrate, (profile.name, rate)
        counted_bytes += sum(f.stat().st_size for f in (folder / profile.name).glob("*.ts"))

    # The ledger: what was produced, and counters equal to what is on disk.
    on_disk = [f for p in LADDER for f in (folder / p.name).glob("*.ts")]
    assert session.transcoded_segments == len(on_disk) == 2 * len(source)
    assert session.transcoded_bytes == counted_bytes
    assert session.transcoded_segments_duration == pytest.approx(
        sum(d for p in LADDER for d, _ in playlist_segments(folder / p.name)), abs=0.01
    )
    assert session.profiles == [p.to_json() for p in LADDER]
    assert [r["name"] for r in session.renditions] == ["360p", "240p"]
    for counters in session.renditions:
        files = list((folder / counters["name"]).glob("*.ts"))
        assert counters["segments"] == len(files)
        assert counters["bytes"] == sum(f.stat().st_size for f in files)
        assert counters["frames"] == sum(len(video_packets(f)) for f in files)
        assert counters["dropped_frames"] == 0
    assert session.outgoing_rate == 0.0 and session.is_healthy and session.issues == []

    # The recording: vod.m3u8 is the master of the whole playlists; the MP4 is the source.
    vod = await api.get(f"/recordings/{stream.playback_id}/{session.id}/vod.m3u8")
    assert vod.status_code == 200
    assert [uri for _, uri in master_variants(vod.text)] == [
        "source.m3u8",
        "360p/vod.m3u8",
        "240p/vod.m3u8",
    ]
    whole = await api.get(f"/recordings/{stream.playback_id}/{session.id}/240p/vod.m3u8")
    assert whole.status_code == 200 and whole.text.endswith(ENDLIST + "\n")

    async def recorded() -> bool:
        row = await stack.store.get_session(session.id)
        return row is not None and row.recording_status == "ready"

    await until(recorded)
    mp4 = streams(folder / "recording.mp4")
    assert [(s["codec_type"], s.get("width")) for s in mp4] == [("video", 1280), ("audio", None)]

    # The API shows it all; viewer seconds count the rendition segment watched.
    api_view = (await api.get(f"/api/sessions/{session.id}", headers=AUTH)).json()
    assert api_view["transcoded_segments"] == session.transcoded_segments
    assert api_view["transcoded_bytes"] == session.transcoded_bytes
    assert [p["name"] for p in api_view["profiles"]] == ["360p", "240p"]
    assert api_view["renditions"] == session.renditions
    totals = (await api.get("/api/analytics", headers=AUTH)).json()
    assert totals["total_transcoded_seconds"] == pytest.approx(
        session.transcoded_segments_duration, abs=0.01
    )
    playback.flush()
    await stack.manager.writes.join()
    row = await stack.store.get_session(session.id)
    assert row is not None and row.viewer_seconds == pytest.approx(seen, abs=0.001)


async def test_an_hevc_source_gives_h264_renditions_and_a_larger_profile_is_skipped(
    stack: Stack, clips: dict[str, Path]
) -> None:
    ladder = [SMALL, Profile("720p", 1280, 720, 2_000_000)]
    stream, key = await stack.streams.create("hevc", record=True, profiles=ladder)
    assert await publish_with_pyav(clips["hevc"], stack.url(key)) == 0
    (session,) = await ended(stack)
    folder = stack.media_root / stream.playback_id / session.id
    video = next(t for t in session.tracks if t["kind"] == "video")
    assert video["codec"] == "hevc"
    listed = playlist_segments(folder / "180p")
    assert len(listed) == session.source_segments >= 2
    for _, uri in listed:
        found = {s["codec_type"]: s for s in streams(folder / "180p" / uri)}
        assert (found["video"]["codec_name"], found["video"]["width"]) == ("h264", 240)
        assert found["audio"]["codec_name"] == "aac"
    assert not (folder / "720p").exists()
    assert session.profiles == [ladder[0].to_json()]
    assert [r["name"] for r in session.renditions] == ["180p"]
    assert [(i["code"], i["message"]) for i in session.issues] == [
        (
            "transcode_profile_skipped",
            "profile 720p (1280x720) is larger than the source (320x240): skipped, never upscaled",
        )
    ]
    assert parse_playlist(folder / "source.m3u8").endlist
    text = (folder / "vod.m3u8").read_text()
    assert [uri for _, uri in master_variants(text)] == ["source.m3u8", "180p/vod.m3u8"]


async def test_a_killed_transcoder_ends_only_the_renditions(
    stack: Stack, clips: dict[str, Path]
) -> None:
    stream, key = await stack.streams.create("killed", profiles=[SMALL])
    publisher = await start_ffmpeg(clips["small"], stack.url(key), realtime=True)

    async def transcoding() -> bool:
        live = stack.owner.live_session(stream.id)
        return live is not None and live.transcoded_segments >= 1

    await until(transcoding, timeout=30)
    assert stack.sessions.renditions is not None
    (process,) = stack.sessions.renditions.transcoder.processes  # type: ignore[attr-defined]
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)

    assert await publisher.wait() == 0
    (session,) = await ended(stack)
    # The source session is whole: it ended as the publisher ended it, every segment cut.
    assert session.end_reason == "unpublished"
    assert session.source_segments == 3 and session.source_segments_duration == pytest.approx(
        5.0, abs=0.1
    )
    # Its renditions stopped where the process died, said so, and were kept as they were.
    assert [i["code"] for i in session.issues] == ["transcode_failed"]
    assert "killed (signal 9)" in session.issues[0]["message"]
    assert not session.is_healthy and session.issues[0]["ended_at"] is None
    await stack.manager.writes.join()
    said = [e.reason for e in await events(stack.store, limit=500) if e.kind == "stream_health"]
    assert said == ["unhealthy: transcode_failed"]
    folder = stack.media_root / stream.playback_id / session.id / SMALL.name
    assert (folder / "index.m3u8").read_text().endswith(ENDLIST + "\n")
    assert 1 <= session.transcoded_segments < session.source_segments


async def test_falling_behind_real_time_is_an_issue_while_it_lasts(
    stack: Stack, clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transcoder's clock is moved 30 s ahead mid-stream (max_lag 5 s), then back:
    its frames are dropped to the next keyframe on time, and the session is unhealthy
    (``transcode_realtime`` open) in between, healthy again after."""
    late = tmp_path / "late"
    late.write_text("0")
    monkeypatch.setenv(LATE_FILE_ENV, str(late))
    assert stack.sessions.renditions is not None
    await stack.sessions.renditions.replace_transcoder(
        TranscodePool(TranscodeSettings(max_lag=5.0, clock=late_clock))
    )
    stream, key = await stack.streams.create("late", profiles=[SMALL])
    publisher = await start_ffmpeg(clips["small"], stack.url(key), realtime=True)

    async def live_with(check: Callable[[SessionRecord], bool]) -> bool:
        live = stack.owner.live_session(stream.id)
        assert publisher.returncode is None, "the publish ended too soon"
        return live is not None and check(live)

    await until(lambda: live_with(lambda s: s.transcoded_segments >= 1), timeout=30)
    late.write_text("30")
    await until(lambda: live_with(lambda s: not s.is_healthy), timeout=30)
    late.write_text("0")
    assert await publisher.wait() == 0
    (session,) = await ended(stack)
    assert session.source_segments == 3
    (issue,) = session.issues
    assert issue["code"] == "transcode_realtime" and issue["ended_at"] is not None
    assert session.is_healthy
    (counters,) = session.renditions
    assert counters["dropped_frames"] > 0 and counters["segments"] >= 2
    folder = stack.media_root / stream.playback_id / session.id / SMALL.name
    assert "#EXT-X-DISCONTINUITY" in (folder / "index.m3u8").read_text()
    await stack.manager.writes.join()
    found = await events(stack.store, limit=500)  # newest first
    said = [e.reason for e in reversed(found) if e.kind == "stream_health"]
    assert said == ["unhealthy: transcode_realtime", "healthy"]
