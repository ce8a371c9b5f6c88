"""Timestamp wraps, jumps and codec configuration changes."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import av

from bench.media import FlvTag
from sessions.hls import Segmenter

from .media import FRAME, check_decodes, media_duration, parse_playlist, push, shift


def _video_dts(paths: list[Path]) -> list[float]:
    """Every video DTS (seconds) of the segments, in order."""
    values: list[float] = []
    for path in paths:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.dts is not None and packet.time_base is not None:
                    values.append(float(packet.dts * packet.time_base))
    return values


def _strictly_increasing(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def test_timestamp_wrap_is_seamless(clips: dict[str, list[FlvTag]], tmp_path: Path) -> None:
    tags = shift(clips["h264_aac"], 2**32 - 1000)
    segmenter = Segmenter(tmp_path, window=10)
    segments = push(segmenter, tags)
    assert segmenter.issues == []
    assert not any(s.discontinuity for s in segments)
    assert segments[0].first_timestamp < 0.1
    expected = media_duration(clips["h264_aac"])
    assert math.isclose(sum(s.duration for s in segments), expected, abs_tol=FRAME)
    assert _strictly_increasing(_video_dts([tmp_path / s.uri for s in segments]))


def test_backward_jump_is_a_discontinuity(clips: dict[str, list[FlvTag]], tmp_path: Path) -> None:
    tags = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    cut = next(i for i, t in enumerate(tags) if t.timestamp >= 3000)
    jumped = tags[:cut] + shift(tags[cut:], -2500)
    segmenter = Segmenter(tmp_path, window=10)
    segments = push(segmenter, jumped)
    assert [i["code"] for i in segmenter.issues] == ["timestamps_backwards"]
    flagged = [s.sequence for s in segments if s.discontinuity]
    assert len(flagged) == 1
    starts = [s.first_timestamp for s in segments]
    assert _strictly_increasing(starts)
    assert _strictly_increasing(_video_dts([tmp_path / s.uri for s in segments]))
    playlist = parse_playlist(tmp_path / "index.m3u8")
    assert playlist.discontinuities == [flagged[0]]
    for segment in segments:
        check_decodes(tmp_path / segment.uri, video=True)


def test_forward_gap_is_a_discontinuity(clips: dict[str, list[FlvTag]], tmp_path: Path) -> None:
    tags = [t for t in clips["h264"] if t.tag_type in (8, 9)]
    cut = next(i for i, t in enumerate(tags) if t.timestamp >= 2500)
    segmenter = Segmenter(tmp_path)
    segments = push(segmenter, tags[:cut] + shift(tags[cut:], 60_000))
    assert [i["code"] for i in segmenter.issues] == ["timestamps_jump"]
    assert sum(s.discontinuity for s in segments) == 1
    assert segments[-1].first_timestamp < 6  # the gap is not carried into the output


def test_codec_config_change_starts_a_new_discontinuity(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    small = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    big = [t for t in clips["h264_aac_big"] if t.tag_type in (8, 9)]
    joined = small + shift(big, small[-1].timestamp + 33)
    segmenter = Segmenter(tmp_path, window=20)
    segments = push(segmenter, joined)
    assert segmenter.issues == []
    flagged = [s for s in segments if s.discontinuity]
    assert len(flagged) == 1
    sizes = [check_decodes(tmp_path / s.uri, video=True)[1] for s in segments]
    change = segments.index(flagged[0])
    assert set(sizes[:change]) == {(320, 240)} and set(sizes[change:]) == {(480, 360)}
    assert _strictly_increasing([s.first_timestamp for s in segments])
    playlist = parse_playlist(tmp_path / "index.m3u8")
    assert playlist.discontinuities == [change]


def test_config_change_in_fmp4_writes_a_new_init(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    small = [t for t in clips["h264_aac"] if t.tag_type in (8, 9)]
    big = [t for t in clips["h264_aac_big"] if t.tag_type in (8, 9)]
    segmenter = Segmenter(tmp_path, segment_format="fmp4", window=20)
    segments = push(segmenter, small + shift(big, small[-1].timestamp + 33))
    assert {s.init_uri for s in segments} == {"init.mp4", "init_1.mp4"}
    playlist = parse_playlist(tmp_path / "index.m3u8")
    assert playlist.maps == ["init.mp4", "init_1.mp4"]
    assert len(playlist.discontinuities) == 1
