"""The HLS segmenter: RTMP audio/video messages in, stream-copied HLS segments out.

Synchronous and CPU-bound (run it off the event loop, see :mod:`.worker`). Each message
is parsed with our FLV parser; sequence headers are kept per track and turned into
PyAV template streams (:mod:`.templates`); frames are placed on the session timeline
(:mod:`.timeline`) and muxed, never decoded, into one short-lived container per segment
(:mod:`.output`); finished segments are listed in the playlists (:mod:`.playlist`).

Start: the first video keyframe once every announced track has a frame (or after 1 s of
media if a track never shows up; audio-only waits that second for video to appear).
Cuts: at the first keyframe of the primary track (video, else audio) at least
``target_duration`` after the segment's start. A configuration change or a timestamp
jump closes the current segment and marks the next one as a discontinuity (with a new
init segment for fMP4). Problems are recorded in :attr:`Segmenter.issues`, never raised.

A session continued after its publisher reconnected gets a new segmenter with
``resume``: it continues the playlists in the folder (numbering on from the last segment
listed there, the first new segment after an ``#EXT-X-DISCONTINUITY``); its timeline
starts at 0 again, which the discontinuity allows. A segmenter finished without ``end``
leaves the playlists open for that.

The files (segments, init segments, playlists) are written by :class:`~.files.SegmentFiles`:
a segment or playlist that cannot be written is skipped, not fatal, and segmenting goes on
(see there).

A :class:`MediaTap` given to the segmenter sees the session as the segmenter places it:
each track's configuration, every frame on the session timeline, and each segment's start
(the renditions are cut at the same places, see :mod:`sessions.transcode`). It is called
in the segmenter's thread and must not block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from ingest.flv import AudioPacket, FlvError, VideoPacket, parse_audio, parse_video

from .files import WRITE_FAILURE_LOG_INTERVAL, SegmentFiles
from .playlist import SegmentInfo
from .templates import (
    NEEDS_CONFIG,
    SegmentFormat,
    TemplateError,
    Templates,
    TrackSetup,
    choose_format,
    open_templates,
)
from .timeline import Timeline
from .tracks import AUDIO, DEFAULT_FRAME_MS, VIDEO, Frame, IssueLog, Track, supported

__all__ = ["WRITE_FAILURE_LOG_INTERVAL", "MediaTap", "Packets", "Segmenter"]

logger = logging.getLogger(__name__)

#: One message's packets, as the FLV parser gives them.
Packets = list[VideoPacket] | list[AudioPacket]

_START_WAIT_MS = 1000
_KEYFRAME_SLACK_MS = 100


class MediaTap(Protocol):
    """Sees the session's media as the segmenter places it (in the segmenter's thread)."""

    def config(self, video: bool, codec: str, config: bytes, tag: bytes) -> None:
        """A track's (new) configuration: its parsed record and the tag it came in."""
        ...

    def frame(
        self,
        video: bool,
        dts: int,
        pts: int,
        data: bytes,
        keyframe: bool,
        arrival: float,
        tag: bytes,
    ) -> None:
        """A frame on the session timeline (ms), as the segments get it; ``tag`` is the
        message it came in."""
        ...

    def cut(self, sequence: int, dts: int, discontinuity: bool, arrival: float) -> None:
        """Segment ``sequence`` starts at ``dts`` (ms), with the frame that follows."""
        ...

    def flush(self) -> None:
        """The segmenter finished: pass on anything held back."""
        ...


class Segmenter:
    """Cuts one live session into HLS segments under ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        target_duration: float = 2.0,
        segment_format: Literal["auto", "mpegts", "fmp4"] = "auto",
        window: int = 6,
        keep_all: bool = False,
        clock: Callable[[], float] = time.time,
        session_id: str | None = None,
        tap: MediaTap | None = None,
        resume: bool = False,
    ) -> None:
        self.directory = directory
        self.tap = tap
        #: Names the session in log lines.
        self.session_id = session_id
        self._clock = clock
        self._issues = IssueLog(clock)
        self.issues: list[dict[str, Any]] = self._issues.items
        self.dropped = 0  # frames dropped: before the first keyframe, backwards, unusable
        self._target_ms = round(target_duration * 1000)
        self._requested = segment_format
        self._files = SegmentFiles(
            directory,
            window=window,
            keep_all=keep_all,
            issues=self._issues,
            clock=clock,
            session_id=session_id,
            resume=resume,
        )
        self._timeline = Timeline()
        self._tracks = {AUDIO: Track(), VIDEO: Track()}
        self._pending: list[Frame] = []
        self._templates: Templates | None = None
        self._format: SegmentFormat = "mpegts"
        self._primary_video = True
        self._last_keyframe: int | None = None
        self._finished = False

    # -- input ---------------------------------------------------------------------

    def add(
        self,
        message_type: int,
        timestamp: int,
        payload: bytes,
        arrival: float,
        packets: Packets | None = None,
    ) -> list[SegmentInfo]:
        """Feed one RTMP audio (8) or video (9) message; returns segments it completed.

        ``packets`` are the message's packets as :func:`~ingest.flv.parse_video` /
        :func:`~ingest.flv.parse_audio` give them, when the caller parsed it already.
        """
        done: list[SegmentInfo] = []
        if self._finished or message_type not in (AUDIO, VIDEO):
            return done
        if packets is None:
            try:
                if message_type == VIDEO:
                    packets = parse_video(payload, timestamp)
                else:
                    packets = parse_audio(payload, timestamp)
            except FlvError as exc:
                self._issues.record(
                    "malformed_message", f"dropped a malformed media message: {exc}"
                )
                return done
        for packet in packets:
            if packet.track_id != 0:
                continue
            kind = packet.kind
            if kind == "frame":
                if isinstance(packet, VideoPacket):
                    key, cts = packet.is_keyframe, packet.cts
                else:
                    key, cts = True, 0
                self._on_frame(
                    message_type, packet.codec, packet.dts, cts, packet.data, key, payload,
                    arrival, done,
                )  # fmt: skip
            elif kind == "config":
                self._on_config(message_type, packet.codec, packet.data, payload, done)
            elif kind == "unsupported":
                self._unsupported(message_type, packet.codec)
        return done

    def finish(self, *, end: bool = True) -> list[SegmentInfo]:
        """Close the last segment and end the playlists (without ``end`` they stay open,
        for a segmenter that resumes them); idempotent."""
        done: list[SegmentInfo] = []
        if self._finished:
            return done
        self._finished = True
        if self._templates is None and self._pending:
            self._try_start(done, force=True)
        self._files.close(done, None)
        if self._templates is not None:
            self._templates.close()
            self._templates = None
        if end:
            self._files.finish()
        if self.tap is not None:
            self.tap.flush()
        return done

    @property
    def segments(self) -> list[SegmentInfo]:
        """The segments in the live window."""
        return self._files.segments

    @property
    def write_failures(self) -> int:
        """Segments and playlists that could not be written."""
        return self._files.write_failures

    # -- tracks and timestamps -----------------------------------------------------

    def _on_config(
        self, kind: int, codec: str | None, data: bytes, tag: bytes, done: list[SegmentInfo]
    ) -> None:
        if codec is None or not supported(kind, codec):
            self._unsupported(kind, codec)
            return
        track = self._tracks[kind]
        if track.codec == codec and track.config == data:
            return
        track.codec, track.config, track.config_tag = codec, data, tag
        self._pending = [frame for frame in self._pending if frame.video != (kind == VIDEO)]
        if self._templates is not None:
            self._files.close(done, None)
            self._templates.close()
            self._templates = None
            self._files.mark_discontinuity()
            self._last_keyframe = None
        if self.tap is not None:
            self.tap.config(kind == VIDEO, codec, data, tag)

    def _on_frame(
        self,
        kind: int,
        codec: str | None,
        raw_dts: int,
        cts: int,
        data: bytes,
        key: bool,
        tag: bytes,
        arrival: float,
        done: list[SegmentInfo],
    ) -> None:
        # Once per frame: no objects made here but the frame queued before the start.
        track = self._tracks[kind]
        if codec is None or codec != track.codec:
            # (A track only takes a codec that can be segmented.)
            if not supported(kind, codec):
                self._unsupported(kind, codec)
                return
            assert codec is not None
            if codec in NEEDS_CONFIG:
                self.dropped += 1  # no sequence header for this codec yet
                return
            self._on_config(kind, codec, b"", tag, done)
        timeline = self._timeline
        dts = timeline.place(raw_dts, track.frame_ms or DEFAULT_FRAME_MS[kind])
        if timeline.jump:
            self._on_jump(timeline.jump, done)
        last = track.last_dts
        if last is not None:
            if dts <= last:
                self.dropped += 1
                self._issues.record("timestamps_backwards", f"dropped a frame {dts - last} ms back")
                return
            if dts - last < 1000:
                track.frame_ms = dts - last
        track.last_dts = dts
        if self._templates is None:
            self._pending.append(Frame(kind == VIDEO, dts, cts, data, key, arrival, tag))
            self._try_start(done, force=False)
        else:
            self._route(kind == VIDEO, dts, cts, data, key, arrival, tag, done)

    def _on_jump(self, jump: int, done: list[SegmentInfo]) -> None:
        if jump < 0:
            self._issues.record("timestamps_backwards", f"timestamps jumped back {-jump} ms")
        else:
            self._issues.record("timestamps_jump", f"timestamps jumped forward {jump} ms")
        self._files.close(done, None)
        self._files.mark_discontinuity()
        self._last_keyframe = None

    def _try_start(self, done: list[SegmentInfo], *, force: bool) -> None:
        pending = self._pending
        if not pending:
            return
        video, audio = self._tracks[VIDEO], self._tracks[AUDIO]
        key = next((f for f in pending if f.video and f.keyframe), None)
        first_audio = next((f for f in pending if not f.video), None)
        waited = pending[-1].dts - pending[0].dts >= _START_WAIT_MS
        complete = key is not None and (first_audio is not None or audio.codec is None)
        if not (complete or ((waited or force) and (key or first_audio))):
            if waited:  # keep about a second while waiting for a keyframe
                keep = [f for f in pending if f.dts >= pending[-1].dts - _START_WAIT_MS]
                self.dropped += len(pending) - len(keep)
                self._pending = keep
            return
        setups: list[TrackSetup] = []
        if key is not None and video.codec is not None:
            setups.append(TrackSetup(VIDEO, video.codec, video.config_tag, key.tag))
        if first_audio is not None and audio.codec is not None:
            setups.append(TrackSetup(AUDIO, audio.codec, audio.config_tag, first_audio.tag))
        self._pending = []
        templates = self._open_templates(setups)
        if templates is None:
            self.dropped += len(pending)
            return
        self._templates = templates
        self._primary_video = templates.video is not None
        self._format = choose_format(
            self._requested,
            video.codec if templates.video is not None else None,
            audio.codec if templates.audio is not None else None,
        )
        self._files.new_init()
        anchor = key if self._primary_video else first_audio
        assert anchor is not None
        for item in pending:
            if item.dts < anchor.dts or (
                item.video and item.dts == anchor.dts and item is not anchor
            ):
                self.dropped += 1
            else:
                self._route(
                    item.video, item.dts, item.cts, item.data, item.keyframe, item.arrival,
                    item.tag, done,
                )  # fmt: skip

    def _open_templates(self, setups: list[TrackSetup]) -> Templates | None:
        try:
            return open_templates(setups)
        except TemplateError as exc:
            if len(setups) == 1:
                self._issues.record("unsupported_codec", f"{setups[0].codec}: {exc}")
                self._tracks[setups[0].message_type] = Track()
                return None
        for setup in setups:  # find the track FFmpeg cannot use, keep the other
            try:
                open_templates([setup]).close()
            except TemplateError as exc:
                self._issues.record("unsupported_codec", f"{setup.codec}: {exc}")
                self._tracks[setup.message_type] = Track()
        usable = [s for s in setups if self._tracks[s.message_type].codec is not None]
        return self._open_templates(usable) if len(usable) == 1 else None

    # -- segments ------------------------------------------------------------------

    def _route(
        self,
        video: bool,
        dts: int,
        cts: int,
        data: bytes,
        key: bool,
        arrival: float,
        tag: bytes,
        done: list[SegmentInfo],
    ) -> None:
        templates = self._templates
        assert templates is not None
        if (templates.video if video else templates.audio) is None:
            self.dropped += 1
            return
        if key and video:
            self._check_keyframe_interval(dts)
        files = self._files
        tap = self.tap
        if key and video == self._primary_video:
            opened = False
            if not files.is_open:
                opened = files.open(self._format, templates, dts, arrival)
            elif dts - files.start >= self._target_ms:
                files.close(done, dts)
                opened = files.open(self._format, templates, dts, arrival)
            if opened and tap is not None:
                tap.cut(files.sequence, dts, files.opened_discontinuous, arrival)
        pts = dts + max(cts, 0)
        if tap is not None:
            tap.frame(video, dts, pts, data, key, arrival, tag)
        if not files.is_open:
            self.dropped += 1
            return
        kind = VIDEO if video else AUDIO
        files.mux(
            video,
            data,
            dts,
            pts,
            self._tracks[kind].frame_ms or DEFAULT_FRAME_MS[kind],
            key,
            arrival,
        )

    def _check_keyframe_interval(self, dts: int) -> None:
        last, self._last_keyframe = self._last_keyframe, dts
        if last is None or self._issues.seen("keyframe_interval"):
            return
        interval = dts - last
        if interval > self._target_ms + _KEYFRAME_SLACK_MS:
            self._issues.record(
                "keyframe_interval",
                f"keyframe interval {interval / 1000:.3f} s exceeds the segment target "
                f"{self._target_ms / 1000:.3f} s; segments will be longer",
                key="keyframe_interval",
            )

    # -- issues --------------------------------------------------------------------

    def _unsupported(self, kind: int, codec: str | None) -> None:
        name = f"{'video' if kind == VIDEO else 'audio'} codec {codec or 'unknown'}"
        message = f"{name} cannot be segmented; track skipped"
        self._issues.record("unsupported_codec", message, key=name)

    def record_issue(self, code: str, message: str) -> None:
        """Record a coded problem (at most a few of each code per session)."""
        self._issues.record(code, message)
