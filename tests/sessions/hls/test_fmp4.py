"""fMP4/CMAF output: HEVC+AAC (auto) and H.264+AAC (forced)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from bench.media import FlvTag
from sessions.hls import Segmenter

from .media import FRAME, check_decodes, ffprobe, media_duration, parse_playlist, push


def _tfdt(data: bytes) -> int:
    at = data.index(b"tfdt")
    if data[at + 4] == 1:
        return int.from_bytes(data[at + 8 : at + 16], "big")
    return int.from_bytes(data[at + 8 : at + 12], "big")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "segment_format"), [("hevc_aac", "auto"), ("h264_aac", "fmp4")])
def test_fmp4_segments(
    clips: dict[str, list[FlvTag]], tmp_path: Path, name: str, segment_format: str
) -> None:
    tags = clips[name]
    out = tmp_path / "out"
    segmenter = Segmenter(out, segment_format=segment_format, window=10)  # type: ignore[arg-type]
    segments = push(segmenter, tags)
    assert segmenter.issues == []
    assert len(segments) >= 3
    assert all(s.uri.endswith(".m4s") and s.init_uri == "init.mp4" for s in segments)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.m3u8", "init.mp4", *(s.uri for s in segments)]
    )
    init = (out / "init.mp4").read_bytes()
    assert b"moov" in init and b"moof" not in init
    total = sum(s.duration for s in segments)
    assert math.isclose(total, media_duration(tags), abs_tol=FRAME)

    starts = []
    decode_times = []
    for segment in segments:
        data = (out / segment.uri).read_bytes()
        assert data[4:8] == b"moof"
        decode_times.append(_tfdt(data))
        joined = tmp_path / (segment.uri + ".mp4")
        joined.write_bytes(init + data)
        first_dts, size = check_decodes(joined, video=True)
        assert size == (320, 240)
        starts.append(first_dts)
        probe = ffprobe(joined, "stream=codec_name")
        streams = probe["streams"]
        assert isinstance(streams, list)
        assert {s["codec_name"] for s in streams} == {
            "hevc" if name.startswith("hevc") else "h264",
            "aac",
        }
    # Base media decode times continue across segments instead of restarting at 0.
    assert all(b > a for a, b in itertools.pairwise(decode_times))
    offsets = [start - s.first_timestamp for start, s in zip(starts, segments, strict=True)]
    # (the MP4 demuxer shifts by the first sample's composition offset, up to a frame)
    assert max(offsets) - min(offsets) <= FRAME + 0.002

    playlist = parse_playlist(out / "index.m3u8")
    assert playlist.tags["#EXT-X-VERSION"] == "7"
    assert playlist.maps == ["init.mp4"]
    assert playlist.endlist
    probe = ffprobe(out / "index.m3u8", "format=duration")
    format_info = probe["format"]
    assert isinstance(format_info, dict)
    assert math.isclose(float(format_info["duration"]), total, abs_tol=FRAME)
