"""One session's renditions: its video decoded once, every profile fed from it.

Fed the items of :mod:`.interface` in order (in a transcoder process, see
:mod:`.process`, or directly, in tests and benchmarks). The video decoder is made from
the track's configuration record (H.264, HEVC, AV1, VP9) and replaced when it changes;
each decoded picture goes to every profile's :class:`~.rendition.Rendition`. The profiles
are decided at the first picture: one larger than the source is skipped, never upscaled
(issue ``transcode_profile_skipped``).

Real time: every frame carries the wall-clock time it arrived. A video frame that is more
than ``max_lag`` seconds old when its turn comes starts a drop: the renditions close their
segments and every frame is dropped (counted per profile) up to the next source keyframe
that is not too old, where they resume with a new segment (a discontinuity). The issue
``transcode_realtime`` is raised when a drop starts, and :attr:`Ladder.lagging` says it
lasts. A :class:`~.interface.Gap` (frames lost before they got here) starts a drop too.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ingest.profiles import Profile
from sessions.hls.templates import SegmentFormat, TemplateError
from sessions.hls.tracks import IssueLog

from .audio import SessionAudio
from .interface import (
    Cut,
    FeedItem,
    Gap,
    MediaFrame,
    ProfileReport,
    RenditionSegment,
    RenditionsReport,
    RenditionsTarget,
    SourceInfo,
    TrackConfig,
)
from .rendition import Rendition

__all__ = ["DECODERS", "EngineSettings", "InlineRenditions", "Ladder", "rendition_format"]

logger = logging.getLogger(__name__)

MS = Fraction(1, 1000)
#: The decoder of each source video codec.
DECODERS = {"h264": "h264", "hevc": "hevc", "av1": "libdav1d", "vp9": "vp9"}
#: Frame rate assumed when the source's is not known.
DEFAULT_FPS = 30.0


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How renditions are made (from ``[transcode]``)."""

    encoder: str = "libx264"
    preset: str = "veryfast"
    max_lag: float = 4.0


def rendition_format(requested: str) -> SegmentFormat:
    """Renditions are MPEG-TS (what every player takes) unless fMP4 is asked for."""
    return "fmp4" if requested == "fmp4" else "mpegts"


class Ladder:
    """Decodes one session's video once and feeds every profile's rendition."""

    def __init__(
        self,
        target: RenditionsTarget,
        profiles: Sequence[Profile],
        settings: EngineSettings,
        *,
        source: SourceInfo | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.target = target
        self.settings = settings
        self._clock = clock
        self.issues = IssueLog(clock)
        self._profiles = tuple(profiles)
        self._format = rendition_format(target.segment_format)
        self._source = source or SourceInfo()
        self._reports = [
            ProfileReport(p.name, p.width, p.height, p.bitrate, float(p.fps)) for p in profiles
        ]
        #: Made at the first decoded picture (when the source's size is known).
        self._renditions: list[Rendition] | None = None
        self._decoder: av.VideoCodecContext | None = None
        self._video_codec: str | None = None
        self._audio_config: TrackConfig | None = None
        self._audio: SessionAudio | None = None
        self._size: tuple[int, int] | None = None
        #: The cut announced for the next video frame.
        self._next_cut: Cut | None = None
        #: Cuts whose keyframe is in the decoder, by presentation time (ms).
        self._cuts: deque[tuple[int, Cut]] = deque()
        #: Arrival times of the frames in the decoder, by presentation time.
        self._arrivals: dict[int, float] = {}
        self._dropping = False
        self.lagging = False
        self.failed = False
        self.finished = False
        self._segments: list[RenditionSegment] = []

    # -- input -----------------------------------------------------------------------------

    def feed(self, items: Sequence[FeedItem]) -> None:
        for item in items:
            if isinstance(item, MediaFrame):
                if item.video:
                    self._video(item)
                else:
                    self._audio_frame(item)
            elif isinstance(item, Cut):
                self._next_cut = item
            elif isinstance(item, TrackConfig):
                self._config(item)
            elif isinstance(item, Gap):
                self._drop_started(None)
                self._count_dropped(item.frames)

    def finish(self) -> None:
        """Decode what is left, close the last segments, end the playlists."""
        if self.finished:
            return
        self.finished = True
        if not self._dropping:
            self._drain_decoder()
            if self._audio is not None:
                packets = self._audio.flush()
                for rendition in self._running():
                    rendition.audio(packets)
        if self._renditions is None and self._profiles:
            self._begin(None)
        for rendition in self._running():
            self._guard(rendition, rendition.finish)
        self._close_codecs()

    def abort(self, why: str) -> None:
        """Stop after an error: end every rendition as failed (playlists ended)."""
        self.failed = True
        self.issues.record("transcode_failed", f"renditions stopped: {why}")
        for rendition in self._running():
            try:
                rendition.stop("failed")
            except Exception as exc:
                logger.debug("rendition stop failed", exc_info=exc)
        for report in self._reports:
            if report.state in ("pending", "running"):
                report.state = "failed"
        self.finished = True
        self._close_codecs()

    # -- output ----------------------------------------------------------------------------

    def report(self) -> RenditionsReport:
        """The counters now (copies)."""
        self._collect()
        return RenditionsReport(
            profiles=[dataclasses.replace(report) for report in self._reports],
            issues=[dict(issue) for issue in self.issues.items],
            lagging=self.lagging,
            failed=self.failed,
            finished=self.finished,
        )

    def take_segments(self) -> list[RenditionSegment]:
        self._collect()
        taken, self._segments = self._segments, []
        return taken

    def _collect(self) -> None:
        for rendition in self._renditions or ():
            name = rendition.profile.name
            self._segments.extend(RenditionSegment(name, s) for s in rendition.take_segments())

    # -- video -----------------------------------------------------------------------------

    def _config(self, item: TrackConfig) -> None:
        if not item.video:
            if self._audio is not None and item != self._audio_config:
                self._audio.close()
                self._audio = None
            self._audio_config = item
            return
        decoder_name = DECODERS.get(item.codec)
        if decoder_name is None:
            self.issues.record(
                "transcode_unsupported",
                f"video codec {item.codec} cannot be transcoded; no renditions",
                key=f"codec {item.codec}",
            )
            self._decoder = None
            return
        self._drain_decoder()
        decoder = av.CodecContext.create(decoder_name, "r")
        assert isinstance(decoder, av.VideoCodecContext)
        if item.config:
            decoder.extradata = item.config
        self._decoder = decoder
        self._video_codec = item.codec

    def _video(self, item: MediaFrame) -> None:
        decoder = self._decoder
        cut, self._next_cut = self._next_cut, None
        if decoder is None:
            return
        late = self._clock() - item.arrival > self.settings.max_lag
        if self._dropping:
            if not item.keyframe or late:
                self._count_dropped(1)
                return
            self._dropping = self.lagging = False
            # Resume here, a new segment after the gap (at this cut if there is one).
            cut = (cut or Cut(-1, item.dts, True, item.arrival))._replace(discontinuity=True)
        elif late:
            self._drop_started(self._clock() - item.arrival)
            self._count_dropped(1)
            return
        if cut is not None:
            self._cuts.append((item.pts, cut))
        self._arrivals[item.pts] = item.arrival
        packet = av.Packet(item.data)
        packet.pts, packet.dts, packet.time_base = item.pts, item.dts, MS
        packet.is_keyframe = item.keyframe
        try:
            frames = decoder.decode(packet)
        except (av.FFmpegError, ValueError) as exc:
            self.issues.record("transcode_decode_error", f"a video frame did not decode: {exc}")
            self._drop_started(None)
            return
        for frame in frames:
            self._picture(frame)

    def _drain_decoder(self) -> None:
        if self._decoder is None:
            return
        try:
            frames = self._decoder.decode(None)
        except (av.FFmpegError, ValueError):
            frames = []
        for frame in frames:
            self._picture(frame)
        self._decoder = None

    def _picture(self, frame: av.VideoFrame) -> None:
        pts = frame.pts
        if pts is None:
            return
        if self._renditions is None:
            self._begin(frame)
        elif (frame.width, frame.height) != self._size:
            self._resized(frame.width, frame.height)
        cut: Cut | None = None
        while self._cuts and self._cuts[0][0] <= pts:
            cut = self._cuts.popleft()[1]
        arrival = self._arrivals.pop(pts, 0.0)
        if len(self._arrivals) > 256:  # frames the decoder never gave back
            self._arrivals = {p: a for p, a in self._arrivals.items() if p > pts}
        keyframe = frame.key_frame
        for rendition in self._running():
            picture = functools.partial(rendition.picture, frame, pts, cut, keyframe, arrival)
            self._guard(rendition, picture)

    def _begin(self, frame: av.VideoFrame | None) -> None:
        """Decide the renditions (at the first picture, or at the end without one)."""
        self._renditions = []
        if frame is None:
            if not any(report.dropped_frames for report in self._reports):
                # (Frames all dropped behind real time were said so: transcode_realtime.)
                self.issues.record(
                    "transcode_profile_skipped",
                    "the source had no video to transcode; no renditions",
                )
            for report in self._reports:
                report.state = "skipped"
            return
        width, height = self._size = frame.width, frame.height
        fps = self._source.fps or DEFAULT_FPS
        for profile, report in zip(self._profiles, self._reports, strict=True):
            if not profile.fits(width, height):
                report.state = "skipped"
                self.issues.record(
                    "transcode_profile_skipped",
                    f"profile {profile.name} ({profile.width}x{profile.height}) is larger "
                    f"than the source ({width}x{height}): skipped, never upscaled",
                )
                continue
            try:
                rendition = Rendition(
                    profile,
                    report,
                    Path(self.target.folder) / profile.name,
                    segment_format=self._format,
                    window=self.target.window,
                    keep_all=self.target.record,
                    resume=self.target.resume,
                    issues=self.issues,
                    clock=self._clock,
                    session_id=self.target.session_id,
                    encoder=self.settings.encoder,
                    preset=self.settings.preset,
                    source_fps=fps,
                )
            except Exception as exc:
                report.state = "failed"
                self.issues.record("transcode_failed", f"profile {profile.name}: {exc}")
                continue
            if self._audio is not None:
                rendition.set_audio(self._audio)
            self._renditions.append(rendition)

    def _resized(self, width: int, height: int) -> None:
        """The source's picture size changed: a profile now larger than it stops."""
        self._size = (width, height)
        for rendition in self._running():
            if not rendition.profile.fits(width, height):
                self.issues.record(
                    "transcode_profile_skipped",
                    f"profile {rendition.profile.name} is larger than the source's new size "
                    f"({width}x{height}): stopped, never upscaled",
                )
                self._guard(rendition, functools.partial(rendition.stop, "skipped"))

    # -- audio -----------------------------------------------------------------------------

    def _audio_frame(self, item: MediaFrame) -> None:
        if self._dropping:
            return
        audio = self._audio
        if audio is None:
            config = self._audio_config
            if config is None or item.tag is None:
                return
            try:
                audio = self._audio = SessionAudio(config, item.tag, self._format)
            except (TemplateError, av.FFmpegError, ValueError) as exc:
                self.issues.record(
                    "transcode_audio", f"audio {config.codec} left out of the renditions: {exc}"
                )
                self._audio_config = None
                return
            for rendition in self._running():
                rendition.set_audio(audio)
        try:
            packets = audio.packets(item)
        except (av.FFmpegError, ValueError) as exc:
            self.issues.record("transcode_decode_error", f"an audio frame did not decode: {exc}")
            return
        if packets:
            for rendition in self._running():
                rendition.audio(packets)

    # -- dropping --------------------------------------------------------------------------

    def _drop_started(self, lag: float | None) -> None:
        if self._dropping:
            return
        self._dropping = True
        if lag is not None:
            self.lagging = True
            self.issues.record(
                "transcode_realtime",
                f"renditions {lag:.1f} s behind real time (max_lag "
                f"{self.settings.max_lag:g} s): frames dropped to the next keyframe",
            )
        elif not self.lagging:
            self.lagging = True
            self.issues.record(
                "transcode_realtime", "renditions lost frames: dropped to the next keyframe"
            )
        if self._decoder is not None:
            self._decoder.flush_buffers()
        self._cuts.clear()
        self._arrivals.clear()
        for rendition in self._running():
            self._guard(rendition, rendition.pause)

    def _count_dropped(self, frames: int) -> None:
        for rendition in self._running():
            rendition.dropped(frames)
        if self._renditions is None:
            for report in self._reports:
                report.dropped_frames += frames

    # -- helpers ---------------------------------------------------------------------------

    def _running(self) -> list[Rendition]:
        return [r for r in self._renditions or () if r.report.state == "running"]

    def _guard(self, rendition: Rendition, work: Callable[[], object]) -> None:
        """Run ``work`` for one rendition; an error ends that rendition alone."""
        try:
            work()
        except Exception as exc:
            logger.debug("rendition failed", exc_info=exc)
            self.issues.record(
                "transcode_failed", f"rendition {rendition.profile.name} stopped: {exc}"
            )
            try:
                rendition.stop("failed")
            except Exception as again:
                logger.debug("rendition stop failed", exc_info=again)
                rendition.report.state = "failed"

    def _close_codecs(self) -> None:
        self._decoder = None
        if self._audio is not None:
            self._audio.close()
            self._audio = None


class InlineRenditions:
    """A :class:`~.interface.Renditions` that runs its ladder in the caller's thread (for
    tests and benchmarks; the server runs ladders in worker processes)."""

    def __init__(self, ladder: Ladder) -> None:
        self.ladder = ladder

    def feed(self, items: Sequence[FeedItem]) -> None:
        self.ladder.feed(items)

    def report(self) -> RenditionsReport:
        return self.ladder.report()

    def take_segments(self) -> list[RenditionSegment]:
        return self.ladder.take_segments()

    def finish(self) -> concurrent.futures.Future[RenditionsReport]:
        self.ladder.finish()
        done: concurrent.futures.Future[RenditionsReport] = concurrent.futures.Future()
        done.set_result(self.ladder.report())
        return done
