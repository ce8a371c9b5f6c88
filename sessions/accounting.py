"""What one session's media adds up to: bytes, frames and facts per track, timestamp span.

Exact definitions (the README's "Accounting" section repeats them):

* ``media_bytes``: the payload bytes of every audio/video message (the FLV tag bodies the
  encoder sent), all tracks together. A track's ``bytes`` are its messages' payload bytes
  (for an Enhanced RTMP multitrack message, that track's share of it).
* ``media_duration``: the span of the media timestamps, audio and video on one timeline,
  extended across 32-bit wraps (small backward steps between interleaved tracks stay small).
* per track: ``frames`` (coded frames, sequence headers excluded), ``keyframes``, ``fps``
  (video: frames over the track's own timestamp span), ``bitrate`` (bits per second over
  that span), and the codec facts read from its sequence header.
"""

from __future__ import annotations

from typing import Any

from ingest.flv import (
    AudioPacket,
    FlvError,
    TimestampUnwrapper,
    VideoPacket,
    parse_audio,
    parse_audio_config,
    parse_video,
    parse_video_config,
)
from ingest.rtmp.events import VIDEO, MediaReceived


class TrackStats:
    __slots__ = (
        "bytes",
        "channels",
        "codec",
        "first_ts",
        "frames",
        "height",
        "keyframes",
        "kind",
        "last_key_ts",
        "last_ts",
        "profile",
        "sample_rate",
        "track_id",
        "width",
    )

    def __init__(self, kind: str, track_id: int) -> None:
        self.kind = kind
        self.track_id = track_id
        self.codec: str | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self.profile: str | None = None
        self.bytes = 0
        self.frames = 0
        self.keyframes = 0
        self.first_ts: int | None = None
        self.last_ts = 0
        #: The timestamp of the last keyframe (video), for the live health checks.
        self.last_key_ts: int | None = None

    def span(self) -> float:
        """Seconds between this track's first and last frame timestamps."""
        return 0.0 if self.first_ts is None else (self.last_ts - self.first_ts) / 1000

    def as_dict(self) -> dict[str, Any]:
        span = self.span()
        fps = None
        if self.kind == "video" and span > 0 and self.frames > 1:
            fps = round((self.frames - 1) / span, 3)
        return {
            "kind": self.kind,
            "track_id": self.track_id,
            "codec": self.codec,
            "profile": self.profile,
            "width": self.width,
            "height": self.height,
            "fps": fps,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "bitrate": round(self.bytes * 8 / span) if span > 0 else None,
            "bytes": self.bytes,
            "frames": self.frames,
            "keyframes": self.keyframes,
        }


class MediaAccount:
    """Counts one session's media messages; cheap enough to run on every message."""

    def __init__(self) -> None:
        self.media_bytes = 0
        self.messages = 0
        #: Messages whose tag header could not be parsed (counted, then dropped).
        self.malformed = 0
        self.first_ts: int | None = None
        self.last_ts = 0
        self.max_ts = 0
        self.tracks: dict[tuple[str, int], TrackStats] = {}
        self._clock = TimestampUnwrapper()

    @property
    def media_duration(self) -> float:
        return 0.0 if self.first_ts is None else (self.max_ts - self.first_ts) / 1000

    def add(self, event: MediaReceived) -> list[VideoPacket] | list[AudioPacket] | None:
        """Count one message; returns its parsed packets (None if its header is broken),
        so that the segmenter need not parse it again."""
        payload = event.payload
        self.media_bytes += len(payload)
        self.messages += 1
        ts = self._clock.unwrap(event.timestamp)
        if self.first_ts is None:
            self.first_ts = self.max_ts = ts
        elif ts > self.max_ts:
            self.max_ts = ts
        elif ts < self.first_ts:
            self.first_ts = ts
        self.last_ts = ts
        try:
            if event.message_type == VIDEO:
                video = parse_video(payload, event.timestamp)
                single = len(video) == 1
                for vp in video:
                    self._video(vp, ts, len(payload) if single else len(vp.data))
                return video
            audio = parse_audio(payload, event.timestamp)
            single = len(audio) == 1
            for ap in audio:
                self._audio(ap, ts, len(payload) if single else len(ap.data))
            return audio
        except FlvError:
            self.malformed += 1
            return None

    def _track(self, kind: str, track_id: int) -> TrackStats:
        track = self.tracks.get((kind, track_id))
        if track is None:
            track = self.tracks[(kind, track_id)] = TrackStats(kind, track_id)
        return track

    def _video(self, packet: VideoPacket, ts: int, size: int) -> None:
        track = self._track("video", packet.track_id)
        track.bytes += size
        if packet.codec is not None:
            track.codec = packet.codec
        if packet.kind == "frame":
            _frame(track, ts)
            if packet.is_keyframe:
                track.keyframes += 1
                track.last_key_ts = ts
        elif packet.kind == "config":
            info = parse_video_config(packet.codec, packet.data)
            track.width = info.width or track.width
            track.height = info.height or track.height
            track.profile = info.profile or track.profile

    def _audio(self, packet: AudioPacket, ts: int, size: int) -> None:
        track = self._track("audio", packet.track_id)
        track.bytes += size
        if packet.codec is not None:
            track.codec = packet.codec
        if packet.kind == "frame":
            _frame(track, ts)
            if track.sample_rate is None:
                track.sample_rate = packet.sample_rate
                track.channels = packet.channels
        elif packet.kind == "config":
            info = parse_audio_config(
                packet.codec, packet.data, packet.sample_rate, packet.channels
            )
            track.sample_rate = info.sample_rate or track.sample_rate
            track.channels = info.channels or track.channels
            track.profile = info.profile or track.profile

    def tracks_list(self) -> list[dict[str, Any]]:
        ordered = sorted(self.tracks.values(), key=lambda t: (t.kind != "video", t.track_id))
        return [t.as_dict() for t in ordered]


def _frame(track: TrackStats, ts: int) -> None:
    track.frames += 1
    if track.first_ts is None:
        track.first_ts = ts
    track.last_ts = ts
