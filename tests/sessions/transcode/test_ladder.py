"""A session's renditions, fed as the session side feeds them (its source segmenter,
tapped), checked with ffprobe: sizes, bit rates, audio, and cuts where the source's are."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.media import FlvTag
from ingest.profiles import Profile
from sessions.transcode import EngineSettings, Ladder

from .media import FPS, Run, first_video_pts, playlist_segments, run_inline, streams, video_packets

LADDER = [
    Profile("360p", 640, 360, 800_000),
    Profile("240p", 426, 240, 400_000, fps=15),
    Profile("1080p", 1920, 1080, 4_000_000),
]
FRAME = 1 / FPS


@pytest.fixture(scope="module")
def ladder_run(
    transcode_clips: dict[str, list[FlvTag]], tmp_path_factory: pytest.TempPathFactory
) -> Run:
    """720p30 H.264+AAC into 360p30 and 240p15 (and a 1080p profile, too large)."""
    return run_inline(transcode_clips["720p"], tmp_path_factory.mktemp("ladder"), LADDER)


@pytest.mark.slow
@pytest.mark.parametrize("profile", LADDER[:2], ids=lambda p: p.name)
def test_each_rendition_is_its_profile_with_the_source_audio(
    ladder_run: Run, profile: Profile
) -> None:
    folder = ladder_run.folder / profile.name
    listed = playlist_segments(folder)
    assert len(listed) == len(ladder_run.source) >= 3
    video_bytes = 0
    seconds = 0.0
    for duration, uri in listed:
        found = {s["codec_type"]: s for s in streams(folder / uri)}
        assert found["video"]["codec_name"] == "h264"
        assert (found["video"]["width"], found["video"]["height"]) == (
            profile.width,
            profile.height,
        )
        assert found["audio"]["codec_name"] == "aac"
        video_bytes += sum(int(p["size"]) for p in video_packets(folder / uri))
        seconds += duration
    rate = video_bytes * 8 / seconds
    assert abs(rate - profile.bitrate) <= 0.25 * profile.bitrate, rate
    pictures = sum(len(video_packets(folder / uri)) for _, uri in listed)
    expected = round(seconds * (profile.fps or FPS))
    assert abs(pictures - expected) <= 2, (pictures, expected)


@pytest.mark.slow
@pytest.mark.parametrize("profile", LADDER[:2], ids=lambda p: p.name)
def test_segment_n_of_every_rendition_starts_where_the_source_s_does(
    ladder_run: Run, profile: Profile
) -> None:
    source = playlist_segments(ladder_run.folder)
    rendition = playlist_segments(ladder_run.folder / profile.name)
    # The same EXTINF values (the last segment, which no cut ends, within a frame).
    assert [d for d, _ in rendition][:-1] == [d for d, _ in source][:-1]
    assert rendition[-1][0] == pytest.approx(source[-1][0], abs=FRAME)
    for (_, ours), (_, theirs) in zip(rendition, source, strict=True):
        ours_pts = first_video_pts(ladder_run.folder / profile.name / ours)
        theirs_pts = first_video_pts(ladder_run.folder / theirs)
        assert abs(ours_pts - theirs_pts) <= FRAME, (ours, ours_pts, theirs_pts)


@pytest.mark.slow
def test_the_counters_are_what_is_on_disk(ladder_run: Run) -> None:
    report = ladder_run.report
    by_name = {p.name: p for p in report.profiles}
    for profile in LADDER[:2]:
        counted = by_name[profile.name]
        folder = ladder_run.folder / profile.name
        files = sorted(folder.glob("seg_*.ts"))
        assert counted.state == "ended"
        assert counted.segments == len(files) == len(ladder_run.segments[profile.name])
        assert counted.bytes == sum(f.stat().st_size for f in files)
        assert counted.segments_duration == pytest.approx(
            sum(d for d, _ in playlist_segments(folder))
        )
        assert counted.frames == sum(len(video_packets(f)) for f in files)
        assert counted.dropped_frames == 0
        assert counted.codecs is not None and counted.codecs.startswith("avc1.")
        assert counted.codecs.endswith(",mp4a.40.2")
    assert report.transcoded_segments == sum(len(v) for v in ladder_run.segments.values())
    assert report.transcoded_bytes == by_name["360p"].bytes + by_name["240p"].bytes
    assert [p.name for p in report.produced] == ["360p", "240p"]
    assert not report.lagging and not report.failed and report.finished


def test_a_profile_larger_than_the_source_is_skipped_with_an_issue(ladder_run: Run) -> None:
    skipped = [p for p in ladder_run.report.profiles if p.name == "1080p"]
    assert skipped[0].state == "skipped" and skipped[0].segments == 0
    assert not (ladder_run.folder / "1080p").exists()
    assert ladder_run.report.issues == [
        {
            "code": "transcode_profile_skipped",
            "message": "profile 1080p (1920x1080) is larger than the source (1280x720): "
            "skipped, never upscaled",
            "at": pytest.approx(ladder_run.report.issues[0]["at"]),
        }
    ]


@pytest.mark.slow
def test_an_hevc_source_gives_h264_renditions(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    run = run_inline(transcode_clips["hevc"], tmp_path, [Profile("low", 160, 120, 150_000)])
    source = playlist_segments(tmp_path, "vod.m3u8")
    rendition = playlist_segments(tmp_path / "low")
    assert streams(tmp_path / "init.mp4")[0]["codec_name"] == "hevc"  # the source: fMP4
    assert len(rendition) == len(source) >= 2
    for _, uri in rendition:
        found = {s["codec_type"]: s for s in streams(tmp_path / "low" / uri)}
        assert (found["video"]["codec_name"], found["video"]["width"]) == ("h264", 160)
        assert found["audio"]["codec_name"] == "aac"
    assert run.report.issues == []


@pytest.mark.slow
def test_opus_becomes_aac_in_mpegts_renditions_and_is_copied_into_fmp4_ones(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    profile = [Profile("low", 160, 120, 150_000)]
    run_inline(transcode_clips["opus"], tmp_path / "ts", profile)
    (_, uri), *_ = playlist_segments(tmp_path / "ts" / "low")
    assert uri.endswith(".ts")
    assert {s["codec_type"]: s["codec_name"] for s in streams(tmp_path / "ts" / "low" / uri)} == {
        "video": "h264",
        "audio": "aac",
    }
    run = run_inline(transcode_clips["opus"], tmp_path / "mp4", profile, segment_format="fmp4")
    playlist = tmp_path / "mp4" / "low" / "vod.m3u8"
    found = {s["codec_type"]: s["codec_name"] for s in streams(playlist)}
    assert found == {"video": "h264", "audio": "opus"}
    assert run.report.profiles[0].codecs is not None
    assert run.report.profiles[0].codecs.endswith(",opus")


def test_behind_real_time_drops_to_the_next_keyframe_and_says_so(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """From 2.5 s to 3.5 s of the clip the ladder's clock runs 10 s after the frames'
    arrival (max_lag 4 s): it drops every frame from there to the first keyframe that is
    on time again (4 s), then resumes with a new segment."""
    tags = transcode_clips["small"]
    profile = Profile("low", 160, 120, 150_000)
    lagging_at: dict[int, bool] = {}

    def lateness(tag: FlvTag) -> float:
        return 10.0 if 2500 <= tag.timestamp < 3500 else 0.0

    def watch(tag: FlvTag, ladder: Ladder) -> None:
        lagging_at[tag.timestamp] = ladder.report().lagging

    run = run_inline(
        tags,
        tmp_path,
        [profile],
        settings=EngineSettings(max_lag=4.0),
        lateness=lateness,
        watch=watch,
    )
    (counted,) = run.report.profiles
    video = sum(1 for t in tags if t.tag_type == 9 and len(t.body) > 5 and t.body[1] == 1)
    assert counted.dropped_frames > 0
    assert counted.frames + counted.dropped_frames == video
    codes = [issue["code"] for issue in run.report.issues]
    assert codes == ["transcode_realtime"]
    assert "behind real time" in run.report.issues[0]["message"]
    assert not run.report.lagging  # it caught up
    segments = run.segments["low"]
    # Cut as the source until the drop; the segment after it starts at 4 s, after a
    # discontinuity, and the source's cuts hold again from there.
    resumed = [s for s in segments if s.discontinuity]
    assert len(resumed) == 1 and resumed[0].first_timestamp == pytest.approx(4.0, abs=0.05)
    source_starts = {round(s.first_timestamp, 3) for s in run.source}
    assert all(round(s.first_timestamp, 3) in source_starts for s in segments)
    # Lagging (is_healthy false) while it lasted: from the first late batch to 4 s.
    assert not any(lag for at, lag in lagging_at.items() if at < 2500 or at >= 4100)
    assert all(lag for at, lag in lagging_at.items() if 2800 <= at < 3900)


@pytest.mark.slow
def test_renditions_behind_from_the_start_to_the_end_say_only_that(
    transcode_clips: dict[str, list[FlvTag]], tmp_path: Path
) -> None:
    """Every frame late: nothing is encoded, every frame is counted as dropped, and the
    issue is that they were behind (not that the source had no video)."""
    run = run_inline(
        transcode_clips["small"],
        tmp_path,
        [Profile("low", 160, 120, 150_000)],
        settings=EngineSettings(max_lag=4.0),
        lateness=lambda tag: 10.0,
    )
    (counted,) = run.report.profiles
    assert counted.frames == 0 and counted.dropped_frames > 0
    assert [issue["code"] for issue in run.report.issues] == ["transcode_realtime"]
