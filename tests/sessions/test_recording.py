"""Recordings: the MP4 remux of a session's segments, and playlists a crash left open."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from bench.media import make_flv, read_flv_tags
from sessions.recording import (
    RecordingError,
    close_playlists,
    remove_partial_files,
    remux_to_mp4,
    source_playlist,
)


def _hls(folder: Path, seconds: float = 4.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    clip = make_flv(folder.parent / "clip.flv", seconds=seconds, gop=15)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", "-f", "hls", "-hls_time", "1",
         "-hls_list_size", "0", "-hls_playlist_type", "event",
         "-hls_segment_filename", str(folder / "seg_%05d.ts"), str(folder / "vod.m3u8")],
        check=True,
    )  # fmt: skip
    return clip


@pytest.mark.slow
def test_remux_plays_end_to_end_in_sync(tmp_path: Path) -> None:
    folder = tmp_path / "session"
    clip = _hls(folder)
    mp4 = remux_to_mp4(folder)
    assert mp4 == folder / "recording.mp4"
    assert not (folder / "recording.mp4.tmp").exists()
    # Coded video frames (AVCPacketType 1), not the sequence header or end-of-sequence tags.
    stamps = [t.timestamp for t in read_flv_tags(clip) if t.tag_type == 9 and t.body[1] == 1]
    pushed = (max(stamps) - min(stamps)) / 1000 + 1 / 30
    with av.open(str(mp4)) as container:
        assert container.duration is not None
        assert abs(container.duration / 1_000_000 - pushed) <= 1 / 30
        video, audio = container.streams.video[0], container.streams.audio[0]
        firsts: dict[str, float] = {}
        frames = 0
        for packet in container.demux(video, audio):
            if packet.pts is None:
                continue
            kind = packet.stream.type
            firsts.setdefault(kind, float(packet.pts * packet.time_base))
            frames += kind == "video"
        assert frames == len(stamps)
        assert abs(firsts["video"] - firsts["audio"]) <= 1024 / 48000
    head = mp4.read_bytes()[:64]
    assert head.index(b"moov") < 64 or b"moov" in mp4.read_bytes()[: 1 << 16], "faststart"


def test_remux_without_a_playlist_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=r"vod\.m3u8 is missing"):
        remux_to_mp4(tmp_path)


@pytest.mark.slow
def test_close_playlists_after_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "session"
    _hls(folder, seconds=2)
    # What a server killed mid-session leaves: playlists without their end.
    unfinished = (folder / "vod.m3u8").read_text().replace("#EXT-X-ENDLIST\n", "")
    for name in ("index.m3u8", "vod.m3u8"):
        (folder / name).write_text(unfinished)
    assert close_playlists(folder)
    for name in ("index.m3u8", "vod.m3u8"):
        assert (folder / name).read_text().rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in (folder / "vod.m3u8").read_text()
    assert not close_playlists(folder), "closing twice changes nothing"
    remux_to_mp4(folder)


def test_a_crash_leaves_renditions_closed_and_masters_as_they_are(tmp_path: Path) -> None:
    """What recovery does to a session with renditions: every variant's playlists get
    their end and lose their half-written files; a master playlist is left alone."""
    unfinished = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2.000,\nseg_00000.ts\n"
    master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nsource.m3u8\n"
    (tmp_path / "360p").mkdir()
    for folder in (tmp_path, tmp_path / "360p"):
        (folder / "index.m3u8").write_text(unfinished)
        (folder / "segment.ts.tmp").write_bytes(b"half")
    (tmp_path / "360p" / "vod.m3u8").write_text(unfinished)
    (tmp_path / "vod.m3u8").write_text(master)
    assert close_playlists(tmp_path)
    for path in (tmp_path / "index.m3u8", tmp_path / "360p/index.m3u8", tmp_path / "360p/vod.m3u8"):
        assert path.read_text().endswith("#EXT-X-ENDLIST\n"), path
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in (tmp_path / "360p/vod.m3u8").read_text()
    assert (tmp_path / "vod.m3u8").read_text() == master
    assert remove_partial_files(tmp_path) == 2
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_recording_is_made_from_the_source_a_master_lists_first(tmp_path: Path) -> None:
    (tmp_path / "vod.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2\nsource.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/vod.m3u8\n"
    )
    assert source_playlist(tmp_path) == tmp_path / "source.m3u8"
    (tmp_path / "vod.m3u8").write_text("#EXTM3U\n#EXTINF:2.000,\nseg_00000.ts\n")
    assert source_playlist(tmp_path) == tmp_path / "vod.m3u8"
    (tmp_path / "vod.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2\n../up.m3u8\n")
    assert source_playlist(tmp_path) is None, "only a playlist in the session's folder"
    with pytest.raises(RecordingError, match=r"vod\.m3u8 is missing"):
        remux_to_mp4(tmp_path)
