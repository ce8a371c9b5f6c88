"""One profile's rendition of a session: scale, pick frames, encode, cut, write.

Each decoded source picture is scaled once for the profile (libswscale, through one
reformatter kept for the rendition) and, when the profile asks for a lower frame rate,
only the pictures that keep that rate are taken; the one where a source segment starts is
always taken. It is encoded with a forced keyframe (IDR) where a source segment starts
(and, when the profile sets no gop, wherever the source has a keyframe), so the encoder's
keyframe has exactly the source's presentation time. When that keyframe comes out of the
encoder the rendition closes its segment and starts the next, with the source segment's
start, duration and program date-time: segment N of every rendition starts where the
source's segment N does.

Audio packets wait in a queue and go into the segment being written as the video catches
up with them (the encoder holds a few pictures back), each into the segment its timestamp
falls in. The files are written by :class:`sessions.hls.files.SegmentFiles`, as the
source's are.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import av.video.reformatter
from av.video.frame import PictureType

from ingest.profiles import Profile
from sessions.hls.codecs import audio_codec_string, codecs_attribute, video_codec_string
from sessions.hls.files import SegmentFiles
from sessions.hls.playlist import SegmentInfo
from sessions.hls.templates import SegmentFormat, Templates
from sessions.hls.tracks import IssueLog

from .audio import AudioPacket, SessionAudio
from .encoders import open_encoder
from .interface import Cut, ProfileReport, ProfileState

__all__ = ["Rendition"]

logger = logging.getLogger(__name__)

_INTERPOLATION = "BILINEAR"
MS = Fraction(1, 1000)


class Rendition:
    """Makes one profile's segments and playlists in ``directory``."""

    def __init__(
        self,
        profile: Profile,
        report: ProfileReport,
        directory: Path,
        *,
        segment_format: SegmentFormat,
        window: int,
        keep_all: bool,
        issues: IssueLog,
        resume: bool = False,
        clock: Callable[[], float],
        session_id: str,
        encoder: str,
        preset: str,
        source_fps: float,
    ) -> None:
        self.profile = profile
        fps = float(profile.fps) if profile.fps and profile.fps < source_fps else source_fps
        #: This rendition's counters (the ladder's report of the profile).
        self.report = report
        report.fps = float(fps)
        report.state = "running"
        self.files = SegmentFiles(
            directory,
            window=window,
            keep_all=keep_all,
            issues=issues,
            clock=clock,
            session_id=session_id,
            label=profile.name,
            resume=resume,
        )
        self._format = segment_format
        self._encoder_name = encoder
        self._preset = preset
        self._fps = fps
        #: Milliseconds between the pictures taken (0: every one).
        self._step = 1000 / profile.fps if profile.fps and profile.fps < source_fps else 0.0
        self._frame_ms = max(1, round(1000 / fps))
        self._scaler = av.video.reformatter.VideoReformatter()
        self._holder: av.container.OutputContainer | None = None
        self._encoder: av.VideoStream | None = None
        self._audio: SessionAudio | None = None
        self._templates: Templates | None = None
        #: Cuts whose forced keyframe is inside the encoder, by presentation time (ms).
        self._cuts: deque[tuple[int, Cut]] = deque()
        self._queued_audio: deque[AudioPacket] = deque()
        #: The presentation time (ms) the next picture is taken at, at a lower frame rate.
        self._due: float | None = None
        #: Whether the open segment started at a source cut (so the next cut ends it).
        self._at_cut = False
        #: When the newest source picture arrived (the segments' last arrival).
        self._arrival = 0.0
        self._segments: list[SegmentInfo] = []
        self._last_dts = -1

    def take_segments(self) -> list[SegmentInfo]:
        """The segments finished since the last call (counted in :attr:`report`)."""
        taken, self._segments = self._segments, []
        return taken

    # -- input -----------------------------------------------------------------------------

    def set_audio(self, audio: SessionAudio) -> None:
        """The session's audio (the next segment carries it)."""
        self._audio = audio
        self._templates = None
        self.files.new_init()

    def picture(
        self, frame: av.VideoFrame, pts: int, cut: Cut | None, keyframe: bool, arrival: float
    ) -> None:
        """One decoded source picture at ``pts`` (ms) that arrived at ``arrival``;
        ``cut`` when a source segment starts with it, ``keyframe`` when the source has
        a keyframe there."""
        step = self._step
        if step:
            due = self._due
            if cut is None and due is not None and pts < due - 0.5:
                return  # a lower frame rate than the source's: not this one
            self._due = pts + step if due is None or cut is not None else max(due + step, pts)
        self._arrival = arrival
        if self._encoder is None:
            self._open_encoder()
        assert self._encoder is not None
        scaled = self._scaler.reformat(
            frame,
            self.profile.width,
            self.profile.height,
            "yuv420p",
            interpolation=_INTERPOLATION,
        )
        scaled.pts = pts
        scaled.time_base = MS
        force = cut is not None or (keyframe and self.profile.gop is None)
        scaled.pict_type = PictureType.I if force else PictureType.NONE
        if cut is not None:
            self._cuts.append((pts, cut))
        self.report.frames += 1
        self._write(self._encoder.codec_context.encode(scaled))

    def audio(self, packets: list[AudioPacket]) -> None:
        self._queued_audio.extend(packets)

    def dropped(self, frames: int) -> None:
        self.report.dropped_frames += frames

    def pause(self) -> None:
        """The source is being dropped (behind real time): encode what the encoder
        holds and close the segment; the next picture opens a new encoder and segment."""
        self._drain()
        self._close(None)
        self._queued_audio.clear()
        self._due = None
        self.files.mark_discontinuity()

    def finish(self) -> None:
        """The session ended: the last segment and the playlists."""
        self._drain()
        self._flush_audio(None)
        self._close(None)
        self.files.finish()
        if self.report.state == "running":
            self.report.state = "ended"

    def stop(self, state: ProfileState) -> None:
        """End this rendition early (``failed``; ``skipped`` when the source became
        smaller than the profile): keep what was written, end the playlists."""
        try:
            self._close(None)
        finally:
            self.files.finish()
            self._close_encoder()
            self.report.state = state

    # -- output ----------------------------------------------------------------------------

    def _open_encoder(self) -> None:
        self._holder, self._encoder = open_encoder(
            self._encoder_name, self.profile, self._fps, self._preset
        )
        self._templates = None
        self.files.new_init()

    def _close_encoder(self) -> None:
        if self._holder is not None:
            self._holder.close()
        self._holder = self._encoder = None
        self._templates = None

    def _drain(self) -> None:
        if self._encoder is not None:
            self._write(self._encoder.codec_context.encode(None))
            self._close_encoder()
        self._cuts.clear()

    def _segment_templates(self) -> Templates:
        templates = self._templates
        if templates is None:
            assert self._holder is not None and self._encoder is not None
            audio = self._audio.template if self._audio is not None else None
            templates = self._templates = Templates(self._holder, self._encoder, audio)
            extradata = bytes(self._encoder.codec_context.extradata or b"")
            sound = self._audio
            self.report.codecs = codecs_attribute(
                video_codec_string("h264", extradata),
                None if sound is None else audio_codec_string(sound.codec, sound.record),
            )
        return templates

    def _write(self, packets: list[av.Packet[Any]]) -> None:
        files = self.files
        for packet in packets:
            pts, dts = packet.pts, packet.dts
            if pts is None or dts is None:
                continue
            if packet.is_keyframe and self._cuts and pts >= self._cuts[0][0]:
                cut = self._cuts.popleft()[1]
                while self._cuts and self._cuts[0][0] <= pts:
                    cut = self._cuts.popleft()[1]
                self._start_segment(cut)
            if not files.is_open:
                continue
            if dts < 0:
                # The encoder's first decode times run ahead of the session's start (it
                # reorders pictures); a segment's times cannot be negative (MPEG-TS would
                # shift the whole segment): the first pictures are decoded at 0, 1, ...
                dts = min(pts, self._last_dts + 1)
            self._last_dts = dts
            self._flush_audio(dts)
            files.mux(
                True, bytes(packet), dts, pts, self._frame_ms, packet.is_keyframe, self._arrival
            )

    def _start_segment(self, cut: Cut) -> None:
        if self.files.is_open:
            self._flush_audio(cut.dts)
            # The source's segment ends where its next one starts.
            self._close(cut.dts if self._at_cut and not cut.discontinuity else None)
        queue = self._queued_audio
        while queue and queue[0].dts < cut.dts:
            queue.popleft()
        if cut.discontinuity:
            self.files.mark_discontinuity()
        self._at_cut = self.files.open(
            self._format, self._segment_templates(), cut.dts, cut.arrival
        )

    def _flush_audio(self, until: int | None) -> None:
        """Mux the queued audio before ``until`` (ms; None: all of it)."""
        queue = self._queued_audio
        files = self.files
        while queue and (until is None or queue[0].dts < until):
            packet = queue.popleft()
            if files.is_open:
                files.mux(
                    False, packet.data, packet.dts, packet.dts, packet.duration, True, self._arrival
                )

    def _close(self, end: int | None) -> None:
        before = len(self._segments)
        self.files.close(self._segments, end)
        self._at_cut = False
        report = self.report
        for segment in self._segments[before:]:
            report.segments += 1
            report.segments_duration = round(report.segments_duration + segment.duration, 6)
            report.bytes += segment.bytes
