"""The pieces around the ladder: what the segmenter's tap hands over, which encoder is
used, a rendition that fails alone, files that cannot be written."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from bench.media import FlvTag
from bench.transcode import KeptBatches
from ingest.profiles import Profile
from sessions.transcode import (
    Cut,
    EngineSettings,
    MediaFrame,
    TrackConfig,
)
from sessions.transcode import rendition as rendition_module
from sessions.transcode.encoders import choose_encoder, nvenc_problem
from tests.support.faults import FullDisk

from .media import run_inline, segment, video_packets


@pytest.mark.slow
def test_the_tap_hands_over_what_the_source_segments_get(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    recorded = KeptBatches()
    source = segment(transcode_clips["small"], tmp_path, recorded)
    items = [item for batch in recorded.batches for item in batch]
    assert [type(i) for i in items[:2]] == [TrackConfig, TrackConfig]
    assert {(i.video, i.codec) for i in items if isinstance(i, TrackConfig)} == {
        (True, "h264"),
        (False, "aac"),
    }
    # A cut before each segment's keyframe, at its start.
    cuts = [(n, i) for n, i in enumerate(items) if isinstance(i, Cut)]
    assert [c.dts / 1000 for _, c in cuts] == [s.first_timestamp for s in source]
    assert [c.sequence for _, c in cuts] == [s.sequence for s in source]
    for n, cut in cuts:
        after = items[n + 1]
        assert isinstance(after, MediaFrame) and after.video and after.keyframe
        assert after.dts == cut.dts
    # Every video frame the source segments hold, in order, once.
    frames = [i for i in items if isinstance(i, MediaFrame)]
    video = [f for f in frames if f.video]
    held = sum(len(video_packets(tmp_path / s.uri)) for s in source)
    assert len(video) == held
    assert [f.dts for f in video] == sorted({f.dts for f in video})
    # The first audio frame carries its message (the audio template is made of it).
    audio = [f for f in frames if not f.video]
    assert audio[0].tag is not None and all(f.tag is None for f in audio[1:])
    # A few hand-overs a second, not one per frame.
    spans = [
        max(i.dts for i in b if isinstance(i, MediaFrame))
        - min(i.dts for i in b if isinstance(i, MediaFrame))
        for b in recorded.batches
    ]
    assert len(recorded.batches) < len(frames) / 8
    assert max(spans) < 250


def test_the_encoder_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = nvenc_problem()
    assert choose_encoder("libx264").codec == "libx264"
    nvenc = choose_encoder("nvenc")
    auto = choose_encoder("auto")
    assert nvenc.codec == "h264_nvenc"
    if problem is None:  # a machine with a usable NVIDIA GPU
        assert auto.codec == "h264_nvenc" and nvenc.reason == "configured"
    else:
        assert auto.codec == "libx264" and problem in auto.reason
        assert nvenc.reason == problem
    assert nvenc_problem() is problem  # probed once


def test_nvenc_renditions_where_it_cannot_open_fail_saying_why(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    run = run_inline(
        transcode_clips["small"],
        tmp_path,
        [Profile("low", 160, 120, 150_000)],
        settings=EngineSettings(encoder="h264_nvenc"),
    )
    (counted,) = run.report.profiles
    problem = nvenc_problem()
    if problem is None:  # a machine with a usable NVIDIA GPU: the renditions are made
        assert counted.state == "ended" and counted.segments == len(run.source)
        assert run.report.issues == []
    else:
        assert counted.state == "failed" and counted.segments == 0
        (issue,) = run.report.issues
        assert issue["code"] == "transcode_failed" and "h264_nvenc" in issue["message"]
    assert len(run.source) == 3  # the source, whatever happens to the renditions


def test_a_rendition_that_fails_ends_alone(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = rendition_module.open_encoder

    def open_encoder(codec: str, profile: Profile, fps: float, preset: str) -> object:
        if profile.name == "bad":
            raise av.error.InvalidDataError(1094995529, "the encoder broke")
        return opened(codec, profile, fps, preset)

    monkeypatch.setattr(rendition_module, "open_encoder", open_encoder)
    good, bad = Profile("good", 160, 120, 150_000), Profile("bad", 240, 180, 200_000)
    run = run_inline(transcode_clips["small"], tmp_path, [good, bad])
    states = {p.name: (p.state, p.segments) for p in run.report.profiles}
    assert states == {"good": ("ended", 3), "bad": ("failed", 0)}
    assert [i["code"] for i in run.report.issues] == ["transcode_failed"]
    assert "rendition bad stopped" in run.report.issues[0]["message"]
    assert not (tmp_path / "bad" / "index.m3u8").exists()  # nothing to list


def test_rendition_files_that_cannot_be_written_are_skipped_and_said(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk is full from the first segment's start to the second's: the source and
    the rendition lose those segments (issues name the rendition), then go on."""
    disk = FullDisk(monkeypatch, tmp_path / "links")
    tags = transcode_clips["small"]

    def lateness(tag: FlvTag) -> float:
        disk.on = 2000 <= tag.timestamp < 3900
        return 0.0

    run = run_inline(tags, tmp_path / "out", [Profile("low", 160, 120, 150_000)], lateness=lateness)
    (counted,) = run.report.profiles
    assert counted.state == "ended" and 1 <= counted.segments < 3
    messages = [i["message"] for i in run.report.issues]
    assert any(m.startswith("rendition low: cannot write segment") for m in messages), messages
    assert all(i["code"] == "segment_write_failed" for i in run.report.issues)
