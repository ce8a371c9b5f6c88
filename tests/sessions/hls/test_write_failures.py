"""Media that cannot be written (disk full, a missing folder): the segment is skipped, the
failure is an issue and a log line, and segmenting goes on with the next segment."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from bench.media import FlvTag
from sessions.hls import Segmenter, SegmentInfo
from tests.support.faults import DEV_FULL, FullDisk

from .media import check_decodes, parse_playlist, shift


def _feed(segmenter: Segmenter, tags: list[FlvTag], start: int = 0) -> list[SegmentInfo]:
    done: list[SegmentInfo] = []
    for index, tag in enumerate(tags, start):
        if tag.tag_type in (8, 9):
            done += segmenter.add(tag.tag_type, tag.timestamp, tag.body, 1_700_000_000 + index)
    return done


def _write_failures(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == event]


def test_a_full_disk_skips_mpegts_segments_and_segmenting_goes_on(
    clips: dict[str, list[FlvTag]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    disk = FullDisk(monkeypatch, tmp_path / "links")
    out = tmp_path / "out"
    now = [100.0]
    segmenter = Segmenter(out, keep_all=True, clock=lambda: now[0], session_id="s-1")
    tags = clips["h264_aac"] + shift(clips["h264_aac"], 7000)  # 14 s
    done: list[SegmentInfo] = []
    position = 0
    # Two segments as usual (the second one is already open when the first comes back).
    while len(done) < 1:
        done += _feed(segmenter, tags[position : position + 1], position)
        position += 1
    disk.on = True
    while disk.failed_opens < 2:  # the disk is full for two whole segments
        done += _feed(segmenter, tags[position : position + 1], position)
        position += 1
        now[0] += 0.5
    disk.on = False
    done += _feed(segmenter, tags[position:], position)
    done += segmenter.finish()

    assert segmenter.write_failures == 2
    codes = [issue["code"] for issue in segmenter.issues]
    assert codes == ["segment_write_failed", "segment_write_failed"]
    assert "No space left on device" in segmenter.issues[0]["message"]
    # Logged once, not per packet or per segment: the second failure came within the
    # log interval.
    (line,) = _write_failures(caplog, "segment_write_failed")
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["session"] == "s-1" and fields["errno"] == errno.ENOSPC
    assert [s.sequence for s in done] == list(range(len(done)))
    assert len(done) >= 4
    after = [s for s in done if s.discontinuity]
    assert len(after) == 1, "the segment after the gap starts a discontinuity"
    assert after[0].sequence == 2 and after[0].first_timestamp >= 6.0
    for segment in done:
        assert (out / segment.uri).stat().st_size == segment.bytes > 0
        check_decodes(out / segment.uri, video=True)
    playlist = parse_playlist(out / "vod.m3u8")
    assert [uri for _, uri in playlist.segments] == [s.uri for s in done]
    assert playlist.discontinuities == [done.index(after[0])]
    assert playlist.endlist
    assert not list(out.glob("*.tmp")) and not list((tmp_path / "links").iterdir())


def test_a_segment_or_playlist_that_cannot_be_written_in_fmp4(
    clips: dict[str, list[FlvTag]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The disk is full for one media segment and one playlist write: each is an issue,
    its temporary file is removed, and the next write goes through."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "seg_00001.m4s.tmp").symlink_to(DEV_FULL)
    (out / "index.m3u8.tmp").symlink_to(DEV_FULL)
    clock = iter(range(0, 10_000, 20))  # 20 s between failures: each one is logged
    segmenter = Segmenter(
        out, segment_format="fmp4", clock=lambda: float(next(clock)), session_id="s-2"
    )
    done = _feed(segmenter, clips["h264_aac"]) + segmenter.finish()

    codes = sorted(issue["code"] for issue in segmenter.issues)
    assert codes == ["playlist_write_failed", "segment_write_failed"]
    assert len(_write_failures(caplog, "segment_write_failed")) == 1
    assert len(_write_failures(caplog, "playlist_write_failed")) == 1
    assert [s.sequence for s in done] == list(range(len(done))) and len(done) >= 3
    assert [s.discontinuity for s in done[:2]] == [False, True]
    assert done[0].init_uri != done[1].init_uri  # a new init segment after the gap
    for segment in done:
        assert (out / segment.uri).is_file()
    playlist = parse_playlist(out / "index.m3u8")
    assert [uri for _, uri in playlist.segments] == [s.uri for s in done][-6:]
    assert playlist.endlist
    assert not list(out.glob("*.tmp"))


def test_a_session_folder_that_cannot_be_made_is_made_once_it_can(
    clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    blocker = tmp_path / "media"
    blocker.write_text("not a folder")  # so media/<session> cannot be made
    out = blocker / "session"
    segmenter = Segmenter(out)
    assert [issue["code"] for issue in segmenter.issues] == ["segment_write_failed"]
    tags = clips["h264_aac"]
    half = len(tags) // 2
    assert _feed(segmenter, tags[:half]) == []
    blocker.unlink()  # the problem is fixed while the session goes on
    done = _feed(segmenter, tags[half:], half) + segmenter.finish()
    assert done and [s.sequence for s in done] == list(range(len(done)))
    assert all((out / s.uri).is_file() for s in done)
    assert parse_playlist(out / "index.m3u8").endlist
