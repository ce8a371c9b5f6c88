"""HLS master playlists (RFC 8216 4.3.4.2): one ``#EXT-X-STREAM-INF`` per variant.

A session with renditions is offered as the source plus each rendition, every one a media
playlist of its own; a player picks among them by ``BANDWIDTH`` (the peak segment bit
rate), ``AVERAGE-BANDWIDTH``, ``RESOLUTION``, ``FRAME-RATE`` and ``CODECS``. Every
variant's segments start on a keyframe, and the renditions are cut where the source is, so
``#EXT-X-INDEPENDENT-SEGMENTS`` holds and players switch cleanly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .output import write_atomic
from .playlist import SegmentInfo

__all__ = ["Variant", "measured_bandwidth", "render_master", "write_master"]


@dataclass(frozen=True, slots=True)
class Variant:
    """One entry of a master playlist. Bit rates are bits per second of the whole
    variant (audio and container included)."""

    uri: str
    bandwidth: int
    average_bandwidth: int | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    #: RFC 6381 codecs, e.g. ``avc1.64001f,mp4a.40.2`` (see :mod:`.codecs`).
    codecs: str | None = None


def measured_bandwidth(segments: Iterable[SegmentInfo]) -> tuple[int, int] | None:
    """(peak, average) bits per second over ``segments``, as a master playlist states
    them; None without a segment that lasts."""
    peak = 0.0
    total_bits = 0
    total_seconds = 0.0
    for segment in segments:
        if segment.duration <= 0:
            continue
        bits = segment.bytes * 8
        peak = max(peak, bits / segment.duration)
        total_bits += bits
        total_seconds += segment.duration
    if not total_seconds:
        return None
    return math.ceil(peak), math.ceil(total_bits / total_seconds)


def render_master(variants: Sequence[Variant]) -> str:
    """The master playlist listing ``variants`` in order (a player starts with the
    first, then switches by bandwidth)."""
    if not variants:
        raise ValueError("a master playlist needs at least one variant")
    lines = ["#EXTM3U", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        if variant.bandwidth <= 0:
            raise ValueError(f"{variant.uri}: BANDWIDTH must be positive")
        attributes = [f"BANDWIDTH={variant.bandwidth}"]
        if variant.average_bandwidth:
            attributes.append(f"AVERAGE-BANDWIDTH={variant.average_bandwidth}")
        if variant.codecs:
            attributes.append(f'CODECS="{variant.codecs}"')
        if variant.width and variant.height:
            attributes.append(f"RESOLUTION={variant.width}x{variant.height}")
        if variant.frame_rate:
            attributes.append(f"FRAME-RATE={variant.frame_rate:.3f}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
        lines.append(variant.uri)
    return "\n".join(lines) + "\n"


def write_master(path: Path, variants: Sequence[Variant]) -> None:
    """Write the master playlist whole (atomically)."""
    write_atomic(path, render_master(variants))
