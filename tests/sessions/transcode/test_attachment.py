"""The renditions attachment (:mod:`sessions.transcode.attachment`) with a transcoder that
reports what each test says: which publishes get renditions, what reaches the session
record (counters, issues, health, the outgoing rate), and the master playlists written."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ingest.config import Config, HlsConfig, SessionsConfig, TranscodeConfig
from ingest.hooks import Decision, PublishAttempt
from ingest.profiles import Profile, format_profiles
from sessions.hls import SegmentInfo
from sessions.playback import MASTER_PLAYLIST, SOURCE_VOD_PLAYLIST, VOD_PLAYLIST
from sessions.transcode import (
    ProfileReport,
    RenditionSegment,
    RenditionsReport,
    RenditionsTarget,
    SourceInfo,
)
from sessions.transcode.attachment import RenditionsAttachment, RenditionsFactory
from sessions.transcode.tap import RenditionsTap
from storage.models import SessionRecord

LADDER = (Profile("360p", 640, 360, 800_000), Profile("240p", 426, 240, 400_000))


@dataclass
class Reported:
    """One session's renditions as the test makes them report."""

    target: RenditionsTarget
    profiles: tuple[Profile, ...]
    state: RenditionsReport
    segments: list[RenditionSegment] = field(default_factory=list)
    finished: bool = False

    def feed(self, items: Sequence[object]) -> None:
        pass

    def report(self) -> RenditionsReport:
        """A copy, as the pool's is."""
        return dataclasses.replace(
            self.state,
            profiles=[dataclasses.replace(p) for p in self.state.profiles],
            issues=[dict(i) for i in self.state.issues],
        )

    def take_segments(self) -> list[RenditionSegment]:
        taken, self.segments = self.segments, []
        return taken

    def finish(self) -> concurrent.futures.Future[RenditionsReport]:
        self.finished = True
        done: concurrent.futures.Future[RenditionsReport] = concurrent.futures.Future()
        done.set_result(self.report())
        return done

    def segment(self, profile: str, size: int, seconds: float = 2.0) -> None:
        counted = next(p for p in self.state.profiles if p.name == profile)
        counted.state = "running"
        counted.segments += 1
        counted.bytes += size
        counted.segments_duration += seconds
        counted.frames += 60
        counted.codecs = "avc1.64001e,mp4a.40.2"
        info = SegmentInfo(counted.segments - 1, "s.ts", seconds, size, 0.0, True, False, 0.0)
        self.segments.append(RenditionSegment(profile, info))


@dataclass
class Transcoder:
    started: list[Reported] = field(default_factory=list)
    closed: bool = False

    def start(
        self,
        target: RenditionsTarget,
        profiles: Sequence[Profile],
        source: SourceInfo | None = None,
    ) -> Reported:
        counters = [ProfileReport(p.name, p.width, p.height, p.bitrate, 30.0) for p in profiles]
        reported = Reported(target, tuple(profiles), RenditionsReport(counters))
        self.started.append(reported)
        return reported

    def close(self) -> None:
        self.closed = True


@dataclass
class Publish:
    attempt: PublishAttempt
    decision: Decision


def publish(profiles: Sequence[Profile] = ()) -> Publish:
    attempt = PublishAttempt(1, "127.0.0.1:5000", "live", "key", "", None)
    decision = Decision(True, stream_id="s", playback_id="p", profiles=format_profiles(profiles))
    return Publish(attempt, decision)


def factory(transcoder: Transcoder, default: str = "") -> RenditionsFactory:
    config = Config(
        transcode=TranscodeConfig(default_profiles=default),
        hls=HlsConfig(window=4),
        sessions=SessionsConfig(rate_window=2.0),
    )
    return RenditionsFactory(config, transcoder=lambda: transcoder)


def record(recorded: bool = False) -> SessionRecord:
    made = SessionRecord("sess", "s", "cam", 100.0, 100.0, 100.0, record=recorded)
    made.tracks = [{"kind": "video", "width": 1280, "height": 720, "fps": 30.0}]
    return made


def opened(
    transcoder: Transcoder, folder: Path, recorded: bool = False
) -> tuple[RenditionsAttachment, Reported, SessionRecord]:
    made = factory(transcoder)(publish(LADDER))
    assert isinstance(made, RenditionsAttachment)
    session = record(recorded)
    tap = made.opened(session, folder)
    assert isinstance(tap, RenditionsTap)
    return made, transcoder.started[-1], session


def test_a_publish_gets_its_stream_s_profiles_or_the_default_ladder_or_nothing() -> None:
    transcoder = Transcoder()
    assert factory(transcoder)(publish()) is None
    default = factory(transcoder, "low:320x180:300000")(publish())
    assert isinstance(default, RenditionsAttachment)
    assert default.profiles == (Profile("low", 320, 180, 300_000),)
    own = factory(transcoder, "low:320x180:300000")(publish(LADDER))
    assert isinstance(own, RenditionsAttachment) and own.profiles == LADDER
    assert transcoder.started == [], "nothing starts before the session opens"


def test_no_hls_folder_means_no_renditions(tmp_path: Path) -> None:
    transcoder = Transcoder()
    made = factory(transcoder)(publish(LADDER))
    assert made is not None and made.opened(record(), None) is None
    assert transcoder.started == []


def test_the_renditions_start_where_the_session_s_media_goes(tmp_path: Path) -> None:
    transcoder = Transcoder()
    _, started, _ = opened(transcoder, tmp_path, recorded=True)
    assert started.target == RenditionsTarget("sess", tmp_path, window=4, record=True)
    assert started.profiles == LADDER


def test_counters_and_issues_reach_the_record(tmp_path: Path) -> None:
    transcoder = Transcoder()
    attachment, reported, session = opened(transcoder, tmp_path)
    reported.segment("360p", 200_000)
    reported.segment("240p", 100_000)
    reported.state.profiles[1].dropped_frames = 3
    skipped = {"code": "transcode_profile_skipped", "message": "m", "at": 1.0}
    reported.state.issues.append(skipped)
    segmenter = {"code": "segment_write_failed", "message": "disk", "at": 2.0}
    session.issues = [segmenter]
    attachment.refresh(session, 101.0, sample=False)
    assert session.transcoded_segments == 2 and session.transcoded_bytes == 300_000
    assert session.transcoded_segments_duration == 4.0
    assert session.profiles == [p.to_json() for p in LADDER]
    assert session.renditions == [
        {"name": "360p", "segments": 1, "bytes": 200_000, "frames": 60, "dropped_frames": 0},
        {"name": "240p", "segments": 1, "bytes": 100_000, "frames": 60, "dropped_frames": 3},
    ]
    # Beside the others, oldest first; a skipped profile is a notice, closed at once.
    notice = {**skipped, "started_at": 1.0, "ended_at": 1.0}
    assert session.issues == [notice, segmenter]
    # Refreshed again, the renditions' issues are not added twice.
    attachment.refresh(session, 102.0, sample=False)
    assert session.issues == [notice, segmenter]
    assert not session.is_healthy, "the segmenter's issue is open"
    session.issues = []
    attachment.refresh(session, 103.0, sample=False)
    assert session.issues == [notice] and session.is_healthy


def test_unhealthy_while_lagging_and_once_failed(tmp_path: Path) -> None:
    transcoder = Transcoder()
    attachment, reported, session = opened(transcoder, tmp_path)
    late = {"code": "transcode_realtime", "message": "behind", "at": 1.0}
    reported.state.issues.append(late)
    reported.state.lagging = True
    attachment.refresh(session, 101.0, sample=False)
    assert not session.is_healthy
    assert session.issues == [{**late, "started_at": 1.0, "ended_at": None}]
    reported.state.lagging = False
    attachment.refresh(session, 102.0, sample=False)
    assert session.is_healthy, "caught up: healthy again"
    assert session.issues == [{**late, "started_at": 1.0, "ended_at": 102.0}]
    # Behind again, twice: the first lag is over where the second starts.
    again = [
        {"code": "transcode_realtime", "message": "behind", "at": 103.0},
        {"code": "transcode_realtime", "message": "behind more", "at": 104.0},
    ]
    reported.state.issues += again
    reported.state.lagging = True
    attachment.refresh(session, 105.0, sample=False)
    assert [(i["started_at"], i["ended_at"]) for i in session.issues] == [
        (1.0, 102.0),
        (103.0, 104.0),
        (104.0, None),
    ]
    reported.state.lagging = False
    failed = {"code": "transcode_failed", "message": "killed", "at": 106.0}
    reported.state.issues.append(failed)
    reported.state.failed = True
    attachment.refresh(session, 107.0, sample=False)
    assert not session.is_healthy
    assert session.issues[-1] == {**failed, "started_at": 106.0, "ended_at": None}
    attachment.refresh(session, 108.0, sample=False)
    assert not session.is_healthy


def test_caught_up_stays_unhealthy_when_something_else_is_wrong(tmp_path: Path) -> None:
    transcoder = Transcoder()
    attachment, reported, session = opened(transcoder, tmp_path)
    reported.state.issues.append({"code": "transcode_realtime", "message": "b", "at": 1.0})
    reported.state.lagging = True
    attachment.refresh(session, 101.0, sample=False)
    session.issues.append(
        {"code": "no_audio", "message": "m", "at": 2.0, "started_at": 2.0, "ended_at": None}
    )
    reported.state.lagging = False
    attachment.refresh(session, 102.0, sample=False)
    assert not session.is_healthy
    assert [i["code"] for i in session.issues] == ["transcode_realtime", "no_audio"]


def test_the_outgoing_rate_is_over_the_rate_window(tmp_path: Path) -> None:
    transcoder = Transcoder()
    attachment, reported, session = opened(transcoder, tmp_path)
    attachment.refresh(session, 100.0, sample=True)
    assert session.outgoing_rate == 0.0
    reported.segment("360p", 100_000)
    attachment.refresh(session, 101.0, sample=True)
    assert session.outgoing_rate == 100_000
    attachment.refresh(session, 102.0, sample=True)
    assert session.outgoing_rate == 50_000
    attachment.refresh(session, 104.0, sample=True)  # the window moved past the segment
    assert session.outgoing_rate == 0.0


async def test_the_master_lists_the_variants_with_segments_and_drops_failed_ones(
    tmp_path: Path,
) -> None:
    transcoder = Transcoder()
    attachment, reported, session = opened(transcoder, tmp_path)
    attachment.meter.codecs.seen(True, "h264", bytes([1, 0x64, 0, 0x1F]))
    attachment.refresh(session, 101.0, sample=False)
    reported.segment("360p", 200_000)
    attachment.refresh(session, 102.0, sample=False)
    await attachment.written()
    assert not (tmp_path / MASTER_PLAYLIST).exists(), "no source segment yet"

    session.source_segments, session.source_bytes = 1, 500_000
    session.source_segments_duration = 2.0
    reported.segment("360p", 300_000)
    attachment.refresh(session, 103.0, sample=False)
    await attachment.written()
    text = (tmp_path / MASTER_PLAYLIST).read_text()
    assert text.splitlines()[2:] == [
        "#EXT-X-STREAM-INF:BANDWIDTH=2000000,AVERAGE-BANDWIDTH=2000000,"
        'CODECS="avc1.64001f",RESOLUTION=1280x720,FRAME-RATE=30.000',
        "index.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=1200000,AVERAGE-BANDWIDTH=1000000,"
        'CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=30.000',
        "360p/index.m3u8",
    ]

    reported.segment("240p", 100_000)
    reported.state.profiles[0].state = "failed"
    attachment.refresh(session, 104.0, sample=False)
    await attachment.written()
    listed = [line for line in (tmp_path / MASTER_PLAYLIST).read_text().splitlines()]
    assert [line for line in listed if not line.startswith("#")] == [
        "index.m3u8",
        "240p/index.m3u8",
    ]


async def test_a_recorded_session_s_vod_playlist_becomes_the_master(tmp_path: Path) -> None:
    transcoder = Transcoder()
    attachment, reported, session = opened(transcoder, tmp_path, recorded=True)
    source = "#EXTM3U\n#EXTINF:2.000,\nseg_00000.ts\n#EXT-X-ENDLIST\n"
    (tmp_path / VOD_PLAYLIST).write_text(source)
    session.source_segments, session.source_bytes = 1, 500_000
    session.source_segments_duration = 2.0
    reported.segment("360p", 200_000)
    reported.segment("240p", 100_000)
    for counted in reported.state.profiles:
        counted.state = "ended"
    await attachment.finish(session)
    assert reported.finished
    assert (tmp_path / SOURCE_VOD_PLAYLIST).read_text() == source
    vod = (tmp_path / VOD_PLAYLIST).read_text()
    assert [line for line in vod.splitlines() if not line.startswith("#")] == [
        SOURCE_VOD_PLAYLIST,
        "360p/vod.m3u8",
        "240p/vod.m3u8",
    ]
    assert session.transcoded_segments == 2 and session.outgoing_rate == 0.0


@pytest.mark.parametrize("recorded", [False, True])
async def test_the_factory_closes_its_transcoder(tmp_path: Path, recorded: bool) -> None:
    transcoder = Transcoder()
    made = factory(transcoder)
    await made.close()
    assert not transcoder.closed, "never made, nothing to close"
    made = factory(transcoder)
    attachment = made(publish(LADDER))
    assert attachment is not None
    attachment.opened(record(recorded), tmp_path)
    await made.close()
    assert transcoder.closed


def test_a_continued_sessions_transcoded_counters_go_on_from_its_earlier_parts() -> None:
    from sessions.transcode.attachment import _counters, _Earlier
    from sessions.transcode.interface import ProfileReport, RenditionsReport

    ladder = [Profile("360p", 640, 360, 800_000), Profile("240p", 426, 240, 400_000)]
    record = SessionRecord(
        id="s", stream_id="st", name="n", created_at=0.0, last_seen=0.0, updated_at=0.0
    )
    record.profiles = [ladder[0].to_json()]
    record.renditions = [
        {"name": "360p", "segments": 3, "bytes": 300, "frames": 90, "dropped_frames": 1}
    ]
    record.transcoded_segments, record.transcoded_bytes = 3, 300
    record.transcoded_segments_duration = 6.0
    earlier = _Earlier.of(record)
    part = RenditionsReport(
        [
            ProfileReport("360p", 640, 360, 800_000, 30.0, "running", 2, 4.0, 200, 60, 0),
            ProfileReport("240p", 426, 240, 400_000, 30.0, "running", 2, 4.0, 100, 60, 2),
        ]
    )
    _counters(record, part, ladder, earlier)
    assert [p["name"] for p in record.profiles] == ["360p", "240p"]
    assert record.renditions == [
        {"name": "360p", "segments": 5, "bytes": 500, "frames": 150, "dropped_frames": 1},
        {"name": "240p", "segments": 2, "bytes": 100, "frames": 60, "dropped_frames": 2},
    ]
    assert (record.transcoded_segments, record.transcoded_bytes) == (7, 600)
    assert record.transcoded_segments_duration == 14.0
    # Taken again at the next refresh: the earlier parts are counted once.
    _counters(record, part, ladder, earlier)
    assert record.transcoded_segments == 7
