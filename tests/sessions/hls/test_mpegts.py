"""MPEG-TS output: H.264+AAC, video only, audio only, long GOPs, playlists."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.media import FlvTag
from sessions.hls import Segmenter

from .media import FRAME, check_decodes, ffprobe, media_duration, parse_playlist, push


@pytest.mark.parametrize(("name", "video"), [("h264_aac", True), ("h264", True), ("aac", False)])
def test_segments_decode_and_add_up(
    clips: dict[str, list[FlvTag]], tmp_path: Path, name: str, video: bool
) -> None:
    segmenter = Segmenter(tmp_path, keep_all=True)
    segments = push(segmenter, clips[name])
    assert segmenter.issues == []
    assert [s.sequence for s in segments] == list(range(len(segments)))
    assert all(s.uri.endswith(".ts") and s.init_uri is None for s in segments)
    assert math.isclose(
        sum(s.duration for s in segments), media_duration(clips[name]), abs_tol=FRAME
    )
    for segment in segments[:-1]:
        assert 2.0 <= segment.duration < 2.0 + 0.05
    starts = []
    for segment in segments:
        path = tmp_path / segment.uri
        assert segment.bytes == path.stat().st_size > 0
        assert segment.keyframe_start and not segment.discontinuity
        first_dts, size = check_decodes(path, video=video)
        assert size == ((320, 240) if video else None)
        if name == "h264_aac":
            check_decodes(path, video=False)  # raw AAC got valid ADTS headers
        starts.append(first_dts)
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_whole_playlist_plays_for_the_pushed_duration(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    tags = clips["h264_aac"]
    segments = push(Segmenter(tmp_path, window=10), tags)
    probe = ffprobe(tmp_path / "index.m3u8", "format=duration")
    format_info = probe["format"]
    assert isinstance(format_info, dict)
    duration = float(format_info["duration"])
    assert math.isclose(duration, media_duration(tags), abs_tol=FRAME)
    assert math.isclose(duration, sum(s.duration for s in segments), abs_tol=0.002)


def test_live_window_slides_and_deletes(clips: dict[str, list[FlvTag]], tmp_path: Path) -> None:
    segmenter = Segmenter(tmp_path, window=2)
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    seen = []
    for index, tag in enumerate(tags):
        seen += segmenter.add(tag.tag_type, tag.timestamp, tag.body, 1_700_000_000 + index / 10)
        if len(seen) >= 3:
            break
    playlist = parse_playlist(tmp_path / "index.m3u8")
    assert not playlist.endlist
    assert playlist.tags["#EXT-X-VERSION"] == "3"
    assert playlist.tags["#EXT-X-MEDIA-SEQUENCE"] == "1"
    assert [uri for _, uri in playlist.segments] == [s.uri for s in seen[1:3]]
    assert not (tmp_path / seen[0].uri).exists()
    seen += segmenter.finish()
    assert segmenter.finish() == []  # idempotent
    playlist = parse_playlist(tmp_path / "index.m3u8")
    assert playlist.endlist
    assert len(playlist.segments) == 2
    assert playlist.tags["#EXT-X-MEDIA-SEQUENCE"] == str(len(seen) - 2)
    assert sorted(p.name for p in tmp_path.glob("*.ts")) == [s.uri for s in seen[-2:]]
    assert len(playlist.date_times) == 2
    assert playlist.date_times[0].endswith("Z") and "T" in playlist.date_times[0]
    target = int(playlist.tags["#EXT-X-TARGETDURATION"])
    assert all(round(duration) <= target for duration, _ in playlist.segments)
    assert not (tmp_path / "vod.m3u8").exists()


def test_keep_all_writes_a_vod_playlist(clips: dict[str, list[FlvTag]], tmp_path: Path) -> None:
    segmenter = Segmenter(tmp_path, window=2, keep_all=True)
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    for index, tag in enumerate(tags[: len(tags) // 2]):
        segmenter.add(tag.tag_type, tag.timestamp, tag.body, 1_700_000_000 + index / 10)
    live = parse_playlist(tmp_path / "vod.m3u8")
    assert live.tags["#EXT-X-PLAYLIST-TYPE"] == "EVENT" and not live.endlist
    for tag in tags[len(tags) // 2 :]:
        segmenter.add(tag.tag_type, tag.timestamp, tag.body, 1_700_000_100)
    segments = segmenter.finish()
    vod = parse_playlist(tmp_path / "vod.m3u8")
    assert vod.tags["#EXT-X-PLAYLIST-TYPE"] == "VOD" and vod.endlist
    assert vod.tags["#EXT-X-MEDIA-SEQUENCE"] == "0"
    assert len(vod.segments) == segments[-1].sequence + 1 == len(list(tmp_path.glob("*.ts")))
    assert len(parse_playlist(tmp_path / "index.m3u8").segments) == 2


def test_long_gop_cuts_on_keyframes_and_reports_once(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    tags = clips["long_gop"]
    segmenter = Segmenter(tmp_path, target_duration=2.0)
    segments = push(segmenter, tags)
    assert [round(s.duration, 1) for s in segments] == [5.0, 5.0]
    assert math.isclose(sum(s.duration for s in segments), media_duration(tags), abs_tol=FRAME)
    issues = [i for i in segmenter.issues if i["code"] == "keyframe_interval"]
    assert len(issues) == 1 and "5.000 s" in issues[0]["message"]
    playlist = parse_playlist(tmp_path / "index.m3u8")
    assert playlist.tags["#EXT-X-TARGETDURATION"] == "5"
    for segment in segments:
        check_decodes(tmp_path / segment.uri, video=True)


def test_nothing_segmentable_produces_nothing(tmp_path: Path) -> None:
    segmenter = Segmenter(tmp_path)
    # Legacy Sorenson H.263 video and Nellymoser audio: named, not supported.
    for ts in range(0, 3000, 33):
        assert segmenter.add(9, ts, b"\x22" + bytes(20), 1.0) == []
        assert segmenter.add(8, ts, b"\x62" + bytes(20), 1.0) == []
    assert segmenter.finish() == []
    assert list(tmp_path.iterdir()) == []
    assert {i["code"] for i in segmenter.issues} == {"unsupported_codec"}
    assert len(segmenter.issues) == 2


def test_garbage_does_not_raise(clips: dict[str, list[FlvTag]], tmp_path: Path) -> None:
    segmenter = Segmenter(tmp_path)
    for payload in (b"", b"\x17", b"\x17\x01", b"\xaf", b"\x17\x01\x00\x00\x00\xff\xff"):
        segmenter.add(9, 0, payload, 1.0)
        segmenter.add(8, 0, payload, 1.0)
    segments = push(segmenter, clips["h264"])
    assert segments


def test_the_open_segment_is_written_to_a_temporary_file_until_complete(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """FFmpeg writes the MPEG-TS segment being made into a temporary file (so no more of
    it than FFmpeg's I/O buffer is held in memory); it takes its listed name only once
    complete."""
    segmenter = Segmenter(tmp_path)
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    done = []
    for index, tag in enumerate(tags[: len(tags) // 2]):
        done += segmenter.add(tag.tag_type, tag.timestamp, tag.body, 1_700_000_000 + index)
    assert done
    temporary = tmp_path / "segment.ts.tmp"
    assert temporary.is_file()
    listed = parse_playlist(tmp_path / "index.m3u8").segments
    assert sorted(p.name for p in tmp_path.glob("seg_*.ts")) == sorted(uri for _, uri in listed)
    last = segmenter.finish()
    assert not temporary.exists()
    assert (tmp_path / last[-1].uri).stat().st_size == last[-1].bytes
