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

A segment or playlist that cannot be written (disk full, I/O error: any ``OSError``) is
skipped, not fatal: the segment is dropped, its temporary file removed, the next one
starts as a discontinuity, and segmenting goes on; each failure is a
``segment_write_failed`` (or ``playlist_write_failed``) issue, logged with the session
the first time and then at most every :data:`WRITE_FAILURE_LOG_INTERVAL` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import av

from ingest.flv import AudioPacket, FlvError, VideoPacket, parse_audio, parse_video
from ingest.logs import log_event

from .output import SegmentWriter, split_fmp4, write_atomic
from .playlist import PlaylistWriter, SegmentInfo
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

__all__ = ["WRITE_FAILURE_LOG_INTERVAL", "Packets", "Segmenter"]

logger = logging.getLogger(__name__)

#: One message's packets, as the FLV parser gives them.
Packets = list[VideoPacket] | list[AudioPacket]

_START_WAIT_MS = 1000
_KEYFRAME_SLACK_MS = 100
_MUX_ERRORS = (av.FFmpegError, ValueError)
#: The file an MPEG-TS segment is written to until it is complete and renamed.
_TEMPORARY = "segment.ts.tmp"
#: Seconds between log lines about one session's media that cannot be written.
WRITE_FAILURE_LOG_INTERVAL = 10.0


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
    ) -> None:
        self.directory = directory
        #: Names the session in log lines.
        self.session_id = session_id
        self._clock = clock
        self._issues = IssueLog(clock)
        self.issues: list[dict[str, Any]] = self._issues.items
        self.dropped = 0  # frames dropped: before the first keyframe, backwards, unusable
        self._target_ms = round(target_duration * 1000)
        self._requested = segment_format
        self._playlist = PlaylistWriter(directory, window=window, keep_all=keep_all)
        self._timeline = Timeline()
        self._tracks = {AUDIO: Track(), VIDEO: Track()}
        self._pending: list[Frame] = []
        self._templates: Templates | None = None
        self._format: SegmentFormat = "mpegts"
        self._primary_video = True
        self._writer: SegmentWriter | None = None
        self._seg_start = 0
        self._seg_end = 0
        self._seg_arrival = 0.0
        self._seg_last_arrival = 0.0
        self._seg_discontinuity = False
        self._next_discontinuity = False
        self._sequence = 0
        self._init_count = 0
        self._init_uri: str | None = None
        self._last_keyframe: int | None = None
        self._finished = False
        #: Segments and playlists that could not be written, and when that was last logged.
        self.write_failures = 0
        self._failure_logged_at: float | None = None
        self._failures_logged = 0
        self._has_directory = self._make_directory()

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

    def finish(self) -> list[SegmentInfo]:
        """Close the last segment and end the playlists; idempotent."""
        done: list[SegmentInfo] = []
        if self._finished:
            return done
        self._finished = True
        if self._templates is None and self._pending:
            self._try_start(done, force=True)
        self._close_segment(done, None)
        if self._templates is not None:
            self._templates.close()
            self._templates = None
        if self._sequence:
            try:
                self._playlist.finish()
            except OSError as exc:
                self._write_failed("playlist_write_failed", "the playlist", exc)
        return done

    @property
    def segments(self) -> list[SegmentInfo]:
        """The segments in the live window."""
        return self._playlist.segments

    # -- tracks and timestamps -----------------------------------------------------

    def _on_config(
        self, kind: int, codec: str | None, data: bytes, tag: bytes, done: list[SegmentInfo]
    ) -> None:
        if not supported(kind, codec):
            self._unsupported(kind, codec)
            return
        track = self._tracks[kind]
        if track.codec == codec and track.config == data:
            return
        track.codec, track.config, track.config_tag = codec, data, tag
        self._pending = [frame for frame in self._pending if frame.video != (kind == VIDEO)]
        if self._templates is not None:
            self._close_segment(done, None)
            self._templates.close()
            self._templates = None
            self._next_discontinuity = True
            self._last_keyframe = None

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
            self._route(kind == VIDEO, dts, cts, data, key, arrival, done)

    def _on_jump(self, jump: int, done: list[SegmentInfo]) -> None:
        if jump < 0:
            self._issues.record("timestamps_backwards", f"timestamps jumped back {-jump} ms")
        else:
            self._issues.record("timestamps_jump", f"timestamps jumped forward {jump} ms")
        self._close_segment(done, None)
        self._next_discontinuity = True
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
        self._init_uri = None
        anchor = key if self._primary_video else first_audio
        assert anchor is not None
        for item in pending:
            if item.dts < anchor.dts or (
                item.video and item.dts == anchor.dts and item is not anchor
            ):
                self.dropped += 1
            else:
                self._route(
                    item.video, item.dts, item.cts, item.data, item.keyframe, item.arrival, done
                )

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
        done: list[SegmentInfo],
    ) -> None:
        templates = self._templates
        assert templates is not None
        if (templates.video if video else templates.audio) is None:
            self.dropped += 1
            return
        if key and video:
            self._check_keyframe_interval(dts)
        if key and video == self._primary_video:
            if self._writer is None:
                self._open_segment(dts, arrival)
            elif dts - self._seg_start >= self._target_ms:
                self._close_segment(done, dts)
                self._open_segment(dts, arrival)
        writer = self._writer
        if writer is None:
            self.dropped += 1
            return
        kind = VIDEO if video else AUDIO
        duration = self._tracks[kind].frame_ms or DEFAULT_FRAME_MS[kind]
        try:
            writer.mux(video, data, dts, dts + max(cts, 0), duration, key)
        except _MUX_ERRORS as exc:
            if isinstance(exc, OSError):
                self._write_failed("segment_write_failed", f"segment {self._sequence}", exc)
            else:
                self._issues.record("mux_error", f"segment {self._sequence}: {exc}")
            writer.abandon()
            self._writer = None
            self._next_discontinuity = True
            return
        if dts + duration > self._seg_end:
            self._seg_end = dts + duration
        self._seg_last_arrival = arrival

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

    def _open_segment(self, dts: int, arrival: float) -> None:
        templates = self._templates
        assert templates is not None
        if not self._has_directory:
            self._has_directory = self._make_directory()
            if not self._has_directory:
                return
        try:
            self._writer = SegmentWriter(self._format, templates, self.directory / _TEMPORARY)
        except OSError as exc:
            self._write_failed("segment_write_failed", f"segment {self._sequence}", exc)
            return
        except _MUX_ERRORS as exc:
            self._issues.record("mux_error", f"cannot open segment {self._sequence}: {exc}")
            return
        self._seg_start = self._seg_end = dts
        self._seg_arrival = arrival
        self._seg_discontinuity = self._next_discontinuity
        if self._next_discontinuity:
            self._init_uri = None
        self._next_discontinuity = False

    def _close_segment(self, done: list[SegmentInfo], end: int | None) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            data = writer.close()
            # fMP4 comes back as bytes, (init, media); MPEG-TS is in its temporary file.
            fmp4 = split_fmp4(data) if data is not None else None
        except _MUX_ERRORS as exc:
            writer.abandon()
            if isinstance(exc, OSError):
                self._write_failed("segment_write_failed", f"segment {self._sequence}", exc)
            else:
                message = f"cannot finish segment {self._sequence}: {exc}"
                self._issues.record("mux_error", message)
            self._next_discontinuity = True
            return
        if writer.packets == 0:
            writer.discard()
            return
        uri = f"seg_{self._sequence:05d}.{'ts' if fmp4 is None else 'm4s'}"
        try:
            if fmp4 is None:
                size = writer.commit(self.directory / uri)
            else:
                init, media = fmp4
                if self._init_uri is None:
                    name = f"init_{self._init_count}.mp4" if self._init_count else "init.mp4"
                    write_atomic(self.directory / name, init)
                    self._init_count += 1
                    self._init_uri = name
                write_atomic(self.directory / uri, media)
                size = len(media)
        except OSError as exc:
            writer.abandon()
            self._write_failed("segment_write_failed", f"segment {self._sequence}", exc)
            self._next_discontinuity = True
            return
        stop = end if end is not None else self._seg_end
        info = SegmentInfo(
            sequence=self._sequence,
            uri=uri,
            duration=(stop - self._seg_start) / 1000,
            bytes=size,
            first_timestamp=self._seg_start / 1000,
            keyframe_start=True,
            discontinuity=self._seg_discontinuity,
            program_date_time=self._seg_arrival,
            init_uri=self._init_uri if fmp4 is not None else None,
            last_arrival=self._seg_last_arrival,
        )
        self._sequence += 1
        try:
            self._playlist.add(info)
        except OSError as exc:
            self._write_failed("playlist_write_failed", "the playlist", exc)
        done.append(info)

    # -- issues --------------------------------------------------------------------

    def _unsupported(self, kind: int, codec: str | None) -> None:
        name = f"{'video' if kind == VIDEO else 'audio'} codec {codec or 'unknown'}"
        message = f"{name} cannot be segmented; track skipped"
        self._issues.record("unsupported_codec", message, key=name)

    def _make_directory(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._write_failed("segment_write_failed", "the session folder", exc)
            return False
        return True

    def _write_failed(self, code: str, what: str, exc: OSError) -> None:
        """Media that could not be written: an issue every time, a log line the first
        time and then at most every :data:`WRITE_FAILURE_LOG_INTERVAL` seconds."""
        self.write_failures += 1
        error = exc.strerror or str(exc)
        self._issues.record(code, f"cannot write {what}: {error}")
        now = self._clock()
        last = self._failure_logged_at
        if last is not None and now - last < WRITE_FAILURE_LOG_INTERVAL:
            return
        self._failure_logged_at = now
        log_event(
            logger,
            logging.ERROR,
            code,
            session=self.session_id,
            file=what,
            error=error,
            errno=exc.errno,
            failures=self.write_failures,
            since_last_line=self.write_failures - self._failures_logged,
        )
        self._failures_logged = self.write_failures

    def record_issue(self, code: str, message: str) -> None:
        """Record a coded problem (at most a few of each code per session)."""
        self._issues.record(code, message)
