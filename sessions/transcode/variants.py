"""The master playlists of a session with renditions: what each variant is, measured.

A session's variants are its source and every rendition that has written a segment and
has not failed. Each is described as a player needs it to choose (RFC 8216 4.3.4.2):
``BANDWIDTH`` (the highest segment bit rate seen), ``AVERAGE-BANDWIDTH`` (all its
segments' bits over their seconds), ``RESOLUTION``, ``FRAME-RATE`` and ``CODECS``.

Files, in the session's folder: ``master.m3u8`` lists ``index.m3u8`` (the source's live
playlist) and ``<profile>/index.m3u8``; the stream's live URL serves it instead of the
source's playlist once it exists. A recorded session's ``vod.m3u8`` becomes, at its end,
the master of the variants' whole playlists: the source's is first copied to
``source.m3u8`` (so a crash between the two steps leaves the source's playlist where it
was), then ``vod.m3u8`` is replaced by the master listing it and ``<profile>/vod.m3u8``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessions.hls.codecs import audio_codec_string, codecs_attribute, video_codec_string
from sessions.hls.master import Variant, write_master
from sessions.hls.output import write_atomic
from sessions.hls.playlist import SegmentInfo
from sessions.playback import (
    MASTER_PLAYLIST,
    SOURCE_VOD_PLAYLIST,
    VOD_PLAYLIST,
    read_regular_file,
)
from storage.models import SessionRecord

from .interface import ProfileReport, RenditionsReport

__all__ = ["SourceCodecs", "VariantMeter", "write_live_master", "write_vod_master"]


@dataclass(slots=True)
class SourceCodecs:
    """The RFC 6381 names of the source's tracks, from their configuration records (set
    in the segmenter's thread, read on the event loop: plain attribute writes)."""

    video: str | None = None
    audio: str | None = None

    def seen(self, video: bool, codec: str, config: bytes) -> None:
        if video:
            self.video = video_codec_string(codec, config)
        else:
            self.audio = audio_codec_string(codec, config)


@dataclass(slots=True)
class _Rate:
    """One variant's bits and seconds, and its highest segment rate."""

    peak: float = 0.0
    bits: int = 0
    seconds: float = 0.0

    def add(self, size: int, seconds: float) -> None:
        if seconds <= 0:
            return
        self.peak = max(self.peak, size * 8 / seconds)
        self.bits += size * 8
        self.seconds += seconds

    def bandwidth(self) -> tuple[int, int] | None:
        if self.seconds <= 0:
            return None
        return math.ceil(self.peak), math.ceil(self.bits / self.seconds)


@dataclass(slots=True)
class VariantMeter:
    """Measures a session's variants from its counters and its renditions' segments."""

    codecs: SourceCodecs = field(default_factory=SourceCodecs)
    _source: _Rate = field(default_factory=_Rate)
    _counted: tuple[int, float] = (0, 0.0)
    _renditions: dict[str, _Rate] = field(default_factory=dict)

    def source_counted(self, record: SessionRecord) -> None:
        """The source's segments finished since the last call (from the session's
        counters: the segments of one flush count as one, for the peak)."""
        size, seconds = self._counted
        added = record.source_bytes - size
        duration = record.source_segments_duration - seconds
        if duration > 0:
            self._source.add(added, duration)
            self._counted = (record.source_bytes, record.source_segments_duration)

    def rendition_segments(self, profile: str, segments: Sequence[SegmentInfo]) -> None:
        rate = self._renditions.setdefault(profile, _Rate())
        for segment in segments:
            rate.add(segment.bytes, segment.duration)

    def variants(
        self,
        record: SessionRecord,
        report: RenditionsReport,
        playlist: str,
        source_playlist: str | None = None,
    ) -> list[Variant]:
        """The source (listed as ``source_playlist``, by default ``playlist``) and the
        renditions that have segments and did not fail (``<profile>/<playlist>``);
        empty while the source or every rendition has none."""
        source = self._source.bandwidth()
        listed = [p for p in report.profiles if _playable(p) and p.name in self._renditions]
        measured = [(p, self._renditions[p.name].bandwidth()) for p in listed]
        renditions = [(p, rate) for p, rate in measured if rate is not None]
        if source is None or not renditions:
            return []
        video = _video_track(record)
        variants = [
            Variant(
                source_playlist or playlist,
                source[0],
                source[1],
                video.get("width"),
                video.get("height"),
                video.get("fps"),
                codecs_attribute(self.codecs.video, self.codecs.audio),
            )
        ]
        for profile, (peak, average) in renditions:
            variants.append(
                Variant(
                    f"{profile.name}/{playlist}",
                    peak,
                    average,
                    profile.width,
                    profile.height,
                    profile.fps or None,
                    profile.codecs,
                )
            )
        return variants


def _playable(profile: ProfileReport) -> bool:
    return profile.state in ("running", "ended") and profile.segments > 0


def _video_track(record: SessionRecord) -> dict[str, Any]:
    return next((t for t in record.tracks if t.get("kind") == "video"), {})


def write_live_master(folder: Path, variants: Sequence[Variant]) -> None:
    """``master.m3u8`` of the live playlists (run in a thread: it writes to disk)."""
    write_master(folder / MASTER_PLAYLIST, variants)


def write_vod_master(folder: Path, variants: Sequence[Variant]) -> bool:
    """Make ``vod.m3u8`` the master of the whole playlists (``variants`` list
    ``source.m3u8`` first); False if the source's playlist is not there."""
    text = read_regular_file(folder / VOD_PLAYLIST)
    if text is None or "#EXT-X-STREAM-INF" in text:
        return False
    write_atomic(folder / SOURCE_VOD_PLAYLIST, text)
    write_master(folder / VOD_PLAYLIST, variants)
    return True
