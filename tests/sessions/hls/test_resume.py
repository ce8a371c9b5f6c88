"""A session's media continued after its publisher reconnected: a new segmenter picks up
the playlists the first one left open, and the recording puts the parts back to back."""

from __future__ import annotations

import math
from pathlib import Path

import av
import pytest

from bench.media import FlvTag
from sessions.hls import Segmenter, SegmentInfo
from sessions.recording import remux_to_mp4

from .media import FRAME, media_duration, parse_playlist


def feed(segmenter: Segmenter, tags: list[FlvTag], arrival: float) -> list[SegmentInfo]:
    done: list[SegmentInfo] = []
    for index, tag in enumerate(tags):
        if tag.tag_type in (8, 9):
            done += segmenter.add(tag.tag_type, tag.timestamp, tag.body, arrival + index / 100)
    return done


def two_parts(
    tmp_path: Path, tags: list[FlvTag], *, keep_all: bool, window: int = 3
) -> tuple[list[SegmentInfo], list[SegmentInfo]]:
    """The clip published twice into one session folder, the second a reconnect (its
    timestamps start at 0 again, as a restarted encoder's do)."""
    first = Segmenter(tmp_path, keep_all=keep_all, window=window)
    one = feed(first, tags, 1_700_000_000.0) + first.finish(end=False)
    live = parse_playlist(tmp_path / "index.m3u8")
    assert not live.endlist, "the playlist stays open while the session waits"
    second = Segmenter(tmp_path, keep_all=keep_all, window=window, resume=True)
    two = feed(second, tags, 1_700_000_100.0) + second.finish()
    return one, two


@pytest.mark.parametrize(("name", "suffix"), [("h264_aac", ".ts"), ("hevc_aac", ".m4s")])
def test_the_second_part_continues_the_numbering_after_a_discontinuity(
    clips: dict[str, list[FlvTag]], tmp_path: Path, name: str, suffix: str
) -> None:
    one, two = two_parts(tmp_path, clips[name], keep_all=True)
    assert [s.sequence for s in one + two] == list(range(len(one) + len(two)))
    assert [s.discontinuity for s in two] == [True] + [False] * (len(two) - 1)
    assert not any(s.discontinuity for s in one)
    # No file is renamed or reused: every segment listed is the one written.
    uris = [s.uri for s in one + two]
    assert len(set(uris)) == len(uris) and all(u.endswith(suffix) for u in uris)
    for segment in one + two:
        assert (tmp_path / segment.uri).stat().st_size == segment.bytes
    if suffix == ".m4s":
        assert {s.init_uri for s in one} == {"init.mp4"}
        assert {s.init_uri for s in two} == {"init_1.mp4"}
    vod = parse_playlist(tmp_path / "vod.m3u8")
    assert vod.endlist and vod.tags["#EXT-X-PLAYLIST-TYPE"] == "VOD"
    assert [uri for _, uri in vod.segments] == uris
    assert vod.discontinuities == [len(one)]
    live = parse_playlist(tmp_path / "index.m3u8")
    assert live.endlist
    assert int(live.tags["#EXT-X-MEDIA-SEQUENCE"]) == len(one) + len(two) - 3


def test_the_live_window_slides_on_across_the_reconnect(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    one, two = two_parts(tmp_path, clips["h264_aac"], keep_all=False, window=2)
    live = parse_playlist(tmp_path / "index.m3u8")
    assert [uri for _, uri in live.segments] == [s.uri for s in two[-2:]]
    # What left the window was deleted, the first part's segments too.
    assert sorted(p.name for p in tmp_path.glob("*.ts")) == [s.uri for s in two[-2:]]
    sequences = [s.sequence for s in one + two]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    # The discontinuity slid out of the window: counted.
    assert live.tags.get("#EXT-X-DISCONTINUITY-SEQUENCE") == "1"


def test_a_resumed_segmenter_with_no_playlist_starts_at_zero(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    segmenter = Segmenter(tmp_path, keep_all=True, resume=True)
    done = feed(segmenter, clips["h264"], 1_700_000_000.0) + segmenter.finish()
    assert done[0].sequence == 0 and not done[0].discontinuity


@pytest.mark.parametrize("name", ["h264_aac", "hevc_aac"])
def test_one_mp4_holds_both_parts_back_to_back(
    clips: dict[str, list[FlvTag]], tmp_path: Path, name: str
) -> None:
    tags = clips[name]
    one, two = two_parts(tmp_path, tags, keep_all=True)
    listed = sum(s.duration for s in one + two)
    assert math.isclose(listed, 2 * media_duration(tags), abs_tol=2 * FRAME)
    mp4 = remux_to_mp4(tmp_path)
    with av.open(str(mp4)) as container:
        assert container.duration is not None
        duration = container.duration / av.time_base
        for stream in container.streams:
            dts = [p.dts for p in container.demux(stream) if p.dts is not None]
            assert dts == sorted(dts) and len(set(dts)) == len(dts)
            container.seek(0)
    assert abs(duration - listed) < 0.2


def test_a_part_without_audio_still_joins_the_mp4(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """The encoder came back without its audio: the held packets of the new part go on
    once enough wait, and the MP4 still has both parts back to back."""
    first = Segmenter(tmp_path, keep_all=True)
    one = feed(first, clips["h264_aac"], 1_700_000_000.0) + first.finish(end=False)
    second = Segmenter(tmp_path, keep_all=True, resume=True)
    two = feed(second, clips["h264"], 1_700_000_100.0) + second.finish()
    listed = sum(s.duration for s in one + two)
    mp4 = remux_to_mp4(tmp_path)
    with av.open(str(mp4)) as container:
        video = container.streams.video[0]
        dts = [p.dts for p in container.demux(video) if p.dts is not None]
        assert dts == sorted(dts) and len(set(dts)) == len(dts)
        frames = len(dts)
        assert video.time_base is not None
        span = (dts[-1] - dts[0]) * video.time_base
    # Every video packet the segments hold, none lost while held.
    with av.open(str(tmp_path / "vod.m3u8"), options={"allowed_extensions": "ALL"}) as source:
        listed_frames = sum(1 for p in source.demux(source.streams.video[0]) if p.size)
    assert frames == listed_frames
    assert abs(float(span) - listed) < 0.2
