"""Viewers' playback routes: MIME types, CORS, caching, ranges, 404s, viewer seconds.

The media is real: ffmpeg segments a PyAV-encoded clip into HLS in the session's folder,
and the segment rows carry the durations ffmpeg wrote in the playlist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.media import make_flv
from ingest.config import Config
from sessions.http import create_app
from sessions.playback import Playback, rewrite_playlist, valid_name
from sessions.streams import Streams
from sessions.writes import StoreWrites
from storage import Store
from storage.models import SessionRecord

T0 = 1_790_000_000.0


class Live:
    def __init__(self) -> None:
        self.sessions: dict[str, SessionRecord] = {}

    def live_sessions(self) -> list[SessionRecord]:
        return list(self.sessions.values())

    def live_session(self, stream_id: str) -> SessionRecord | None:
        return self.sessions.get(stream_id)

    def total_ingest_rate(self) -> float:
        return 0.0

    async def kick(self, session_id: str) -> bool:
        return False

    started_at = T0


@dataclass
class Setup:
    client: httpx.AsyncClient
    store: Store
    live: Live
    playback: Playback
    playback_id: str
    stream_id: str
    media: Path


async def _session(setup: Setup, session_id: str, *, record: bool, live: bool) -> list[str]:
    """A session with real HLS files (and, recorded, an MP4); returns its segment names."""
    folder = setup.media / setup.playback_id / session_id
    folder.mkdir(parents=True)
    clip = make_flv(folder.parent / f"{session_id}.flv", seconds=4, gop=15)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-f", "hls", "-hls_time", "1",
         "-hls_list_size", "0", "-hls_segment_filename", str(folder / "seg_%05d.ts"),
         str(folder / "index.m3u8")],
        check=True,
    )  # fmt: skip
    if record:
        (folder / "vod.m3u8").write_text((folder / "index.m3u8").read_text())
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-movflags", "+faststart",
             str(folder / "recording.mp4")],
            check=True,
        )  # fmt: skip
    record_row = SessionRecord(
        id=session_id, stream_id=setup.stream_id, name="cam", created_at=T0, last_seen=T0 + 4,
        updated_at=T0, status="live" if live else "ended", record=record,
    )  # fmt: skip
    await setup.store.insert_session(record_row)
    names: list[str] = []
    lines = (folder / "index.m3u8").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXTINF:"):
            uri = lines[i + 1]
            names.append(uri)
            await setup.store.add_segment(
                session_id, sequence=len(names) - 1, uri=uri,
                duration=float(line[8:].rstrip(",")), bytes=(folder / uri).stat().st_size,
                first_timestamp=0.0, keyframe_start=True, discontinuity=False, now=T0,
            )  # fmt: skip
    if live:
        setup.live.sessions[setup.stream_id] = record_row
    return names


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    store = await Store.open(tmp_path / "db.sqlite")
    streams = Streams(store)
    stream, _ = await streams.create("cam")
    live = Live()
    playback = Playback(store, live, tmp_path / "media", StoreWrites(store))
    app = create_app(
        store=store, streams=streams, live=live, config=Config(), admin_token="t",
        is_ready=lambda: True, playback=playback,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://viewer") as client:
        yield Setup(
            client, store, live, playback, stream.playback_id, stream.id, tmp_path / "media"
        )
    await store.close()


@pytest.mark.slow
async def test_live_playlist_points_into_the_session(setup: Setup) -> None:
    names = await _session(setup, "s-live", record=False, live=True)
    r = await setup.client.get(f"/hls/{setup.playback_id}/index.m3u8")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["cache-control"] == "max-age=1, must-revalidate"
    media_lines = [line for line in r.text.splitlines() if line and not line.startswith("#")]
    assert media_lines == [f"s-live/{name}" for name in names]
    segment = await setup.client.get(f"/hls/{setup.playback_id}/{media_lines[0]}")
    assert segment.status_code == 200
    assert segment.headers["content-type"] == "video/mp2t"
    assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert segment.content[:1] == b"\x47"  # an MPEG-TS sync byte


@pytest.mark.slow
async def test_fetching_segments_adds_exactly_their_durations(setup: Setup) -> None:
    names = await _session(setup, "s1", record=False, live=True)
    durations = {s["uri"]: s["duration"] for s in await setup.store.list_segments("s1")}
    fetched = [names[0], names[1], names[1], names[-1]]
    for name in fetched:
        assert (await setup.client.get(f"/hls/{setup.playback_id}/s1/{name}")).status_code == 200
    await setup.client.get(f"/hls/{setup.playback_id}/s1/index.m3u8")  # playlists count nothing
    setup.playback.flush()
    await setup.playback.writes.join()
    session = await setup.store.get_session("s1")
    assert session is not None
    assert session.viewer_seconds == pytest.approx(sum(durations[n] for n in fetched), abs=1e-9)
    analytics = await setup.store.analytics()
    assert analytics.total_viewer_seconds == pytest.approx(session.viewer_seconds)


@pytest.mark.slow
async def test_recording_files_and_ranges(setup: Setup) -> None:
    await _session(setup, "s-rec", record=True, live=False)
    base = f"/recordings/{setup.playback_id}/s-rec"
    vod = await setup.client.get(f"{base}/vod.m3u8")
    assert vod.status_code == 200 and "#EXTINF" in vod.text
    assert vod.headers["cache-control"] == "public, max-age=31536000, immutable"
    whole = await setup.client.get(f"{base}/recording.mp4")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    part = await setup.client.get(f"{base}/recording.mp4", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert part.content == whole.content[100:200]
    # An ended recorded session's segments stay playable at the session URL too.
    assert (
        await setup.client.get(f"/hls/{setup.playback_id}/s-rec/seg_00000.ts")
    ).status_code == 200


@pytest.mark.slow
async def test_an_ended_unrecorded_session_plays_until_its_media_is_deleted(
    setup: Setup,
) -> None:
    """Players still on the last window finish it; once the server deletes the media
    (see sessions.media_cleanup), it is gone."""
    names = await _session(setup, "s-ended", record=False, live=False)
    base = f"/hls/{setup.playback_id}/s-ended"
    assert (await setup.client.get(f"{base}/{names[-1]}")).status_code == 200
    assert (await setup.client.get(f"{base}/index.m3u8")).status_code == 200
    assert (await setup.client.get(f"/hls/{setup.playback_id}/index.m3u8")).status_code == 404
    shutil.rmtree(setup.media / setup.playback_id / "s-ended")
    for name in ("index.m3u8", names[-1]):
        r = await setup.client.get(f"{base}/{name}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


@pytest.mark.slow
async def test_not_found_cases(setup: Setup) -> None:
    await _session(setup, "s-gone", record=False, live=False)
    shutil.rmtree(setup.media / setup.playback_id / "s-gone")  # as the server deletes it
    pid = setup.playback_id
    for url in (
        f"/hls/{pid}/index.m3u8",  # not live
        f"/hls/{pid}/s-gone/seg_00000.ts",  # ended, not recorded, deleted
        f"/recordings/{pid}/s-gone/vod.m3u8",
        "/hls/unknown/index.m3u8",
        f"/hls/{pid}/nope/seg_00000.ts",
        f"/hls/{pid}/s-gone/.hidden.ts",
        f"/hls/{pid}/s-gone/s-gone.flv",
    ):
        r = await setup.client.get(url)
        assert r.status_code == 404, url
        assert r.json()["error"]["code"] == "not_found"
    # A path that climbs out of the session folder matches no playback route at all.
    r = await setup.client.get(f"/hls/{pid}/s-gone/..%2Fs-gone.flv")
    assert r.status_code == 404
    assert b"FLV" not in r.content


async def test_cors_preflight(setup: Setup) -> None:
    r = await setup.client.options(
        f"/hls/{setup.playback_id}/index.m3u8",
        headers={"Origin": "https://player.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "Range" in r.headers["access-control-allow-headers"]


def test_names_and_rewriting() -> None:
    assert valid_name("seg_00001.ts") and valid_name("init.mp4") and valid_name("index.m3u8")
    assert not valid_name("../x.ts") and not valid_name(".x.ts") and not valid_name("a/b.ts")
    text = '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2.000,\nseg_1.m4s\n'
    assert rewrite_playlist(text, "S") == (
        '#EXTM3U\n#EXT-X-MAP:URI="S/init.mp4"\n#EXTINF:2.000,\nS/seg_1.m4s\n'
    )


@pytest.mark.slow
async def test_every_playback_404_allows_any_origin(setup: Setup) -> None:
    """A browser player must see "not found" (hls.js retries), not a CORS failure."""
    await _session(setup, "s-gone", record=False, live=False)
    shutil.rmtree(setup.media / setup.playback_id / "s-gone")  # as the server deletes it
    pid = setup.playback_id
    origin = {"Origin": "https://player.example"}
    for url in (
        f"/hls/{pid}/index.m3u8",  # not live (any more)
        "/hls/unknown/index.m3u8",
        f"/hls/{pid}/s-gone/seg_00000.ts",
        f"/recordings/{pid}/s-gone/recording.mp4",
        f"/hls/{pid}/too/deep/for/a/route.ts",  # no route at all
    ):
        r = await setup.client.get(url, headers=origin)
        assert r.status_code == 404, url
        assert r.headers["access-control-allow-origin"] == "*", url
        assert r.json()["error"]["code"] == "not_found"


@pytest.mark.slow
async def test_head_answers_like_get_without_the_body(setup: Setup) -> None:
    names = await _session(setup, "s-live", record=False, live=True)
    await _session(setup, "s-rec", record=True, live=False)
    pid = setup.playback_id
    for url in (
        "/healthz",
        f"/hls/{pid}/index.m3u8",
        f"/hls/{pid}/s-live/index.m3u8",
        f"/hls/{pid}/s-live/{names[0]}",
        f"/recordings/{pid}/s-rec/vod.m3u8",
        f"/recordings/{pid}/s-rec/recording.mp4",
    ):
        get = await setup.client.get(url)
        head = await setup.client.head(url)
        assert head.status_code == get.status_code == 200, url
        assert head.content == b"", url
        assert head.headers["content-type"] == get.headers["content-type"], url
        assert head.headers["content-length"] == str(len(get.content)), url
    assert (await setup.client.head(f"/hls/{pid}/s-live/nope.ts")).status_code == 404
    # Only the GETs count viewer seconds.
    before = setup.playback._viewer_seconds.get("s-live", 0.0)
    await setup.client.head(f"/hls/{pid}/s-live/{names[1]}")
    assert setup.playback._viewer_seconds.get("s-live", 0.0) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/hls/p/index.m3u8"), ("DELETE", "/recordings/p/s/recording.mp4")],
)
async def test_405_on_playback_lists_what_the_path_answers(
    setup: Setup, method: str, path: str
) -> None:
    r = await setup.client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"
    assert r.headers["access-control-allow-origin"] == "*"


@pytest.mark.slow
async def test_only_regular_files_are_served(setup: Setup, tmp_path: Path) -> None:
    """A symbolic link in a session folder is not followed, wherever it points; a FIFO is
    not opened."""
    names = await _session(setup, "s-live", record=True, live=True)
    folder = setup.media / setup.playback_id / "s-live"
    secret = tmp_path / "secret.ts"
    secret.write_bytes(b"\x47 not for viewers")
    (folder / "outside.ts").symlink_to(secret)
    (folder / "inside.ts").symlink_to(folder / names[0])
    (folder / "relative.ts").symlink_to(names[0])
    os.mkfifo(folder / "fifo.ts")
    pid = setup.playback_id
    for name in ("outside.ts", "inside.ts", "relative.ts", "fifo.ts"):
        for base in ("hls", "recordings"):
            r = await setup.client.get(f"/{base}/{pid}/s-live/{name}")
            assert r.status_code == 404, (base, name)
            assert b"not for viewers" not in r.content
    assert (await setup.client.get(f"/hls/{pid}/s-live/{names[0]}")).status_code == 200
    # The live playlist itself, replaced by a link, is not read through it.
    playlist = folder / "index.m3u8"
    playlist.rename(tmp_path / "index.m3u8")
    playlist.symlink_to(tmp_path / "index.m3u8")
    assert (await setup.client.get(f"/hls/{pid}/index.m3u8")).status_code == 404
    assert (await setup.client.get(f"/hls/{pid}/s-live/index.m3u8")).status_code == 404


async def _adaptive(setup: Setup, session_id: str) -> Path:
    """A live session with a rendition: a master playlist and the rendition's files (the
    segment is not media: the routes serve files, the tests elsewhere play them)."""
    folder = setup.media / setup.playback_id / session_id
    (folder / "360p").mkdir(parents=True)
    (folder / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2000000\nindex.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=900000\n360p/index.m3u8\n"
    )
    (folder / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2.000,\nseg_00000.ts\n")
    (folder / "360p" / "index.m3u8").write_text(
        "#EXTM3U\n#EXTINF:2.000,\nseg_00000.ts\n#EXTINF:1.500,\nseg_00001.ts\n"
    )
    for name in ("seg_00000.ts", "seg_00001.ts"):
        (folder / "360p" / name).write_bytes(b"\x47" * 188)
    record = SessionRecord(
        id=session_id, stream_id=setup.stream_id, name="cam", created_at=T0, last_seen=T0,
        updated_at=T0,
    )  # fmt: skip
    await setup.store.insert_session(record)
    setup.live.sessions[setup.stream_id] = record
    return folder


async def test_a_session_with_renditions_plays_from_its_master(setup: Setup) -> None:
    await _adaptive(setup, "s-abr")
    pid = setup.playback_id
    master = await setup.client.get(f"/hls/{pid}/index.m3u8")
    assert master.status_code == 200
    assert [line for line in master.text.splitlines() if not line.startswith("#")] == [
        "s-abr/index.m3u8",
        "s-abr/360p/index.m3u8",
    ]
    playlist = await setup.client.get(f"/hls/{pid}/s-abr/360p/index.m3u8")
    assert playlist.status_code == 200
    assert playlist.headers["cache-control"] == "max-age=1, must-revalidate"
    for name in ("seg_00000.ts", "seg_00001.ts", "seg_00001.ts"):
        segment = await setup.client.get(f"/hls/{pid}/s-abr/360p/{name}")
        assert segment.status_code == 200 and segment.headers["content-type"] == "video/mp2t"
    head = await setup.client.head(f"/hls/{pid}/s-abr/360p/seg_00000.ts")
    assert head.status_code == 200, "and a HEAD counts nothing"
    setup.playback.flush()
    await setup.playback.writes.join()
    session = await setup.store.get_session("s-abr")
    assert session is not None and session.viewer_seconds == pytest.approx(2.0 + 1.5 + 1.5)


async def test_a_rendition_s_files_are_only_its_own(setup: Setup, tmp_path: Path) -> None:
    folder = await _adaptive(setup, "s-abr")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ts").write_bytes(b"x")
    (folder / "elsewhere").symlink_to(outside, target_is_directory=True)
    pid = setup.playback_id
    for url in (
        f"/hls/{pid}/s-abr/elsewhere/secret.ts",  # a linked folder is not followed
        f"/hls/{pid}/s-abr/240p/index.m3u8",  # no such rendition
        f"/hls/{pid}/s-abr/.hidden/index.m3u8",
        f"/hls/{pid}/s-abr/360p/nope.ts",
        f"/recordings/{pid}/s-abr/360p/index.m3u8",  # not recorded
        f"/hls/{pid}/other/360p/index.m3u8",
    ):
        r = await setup.client.get(url)
        assert r.status_code == 404, url
        assert r.json()["error"]["code"] == "not_found"
