"""Per-session bookkeeping shared by the segmenter: track state, queued frames, issues."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ingest.rtmp.events import AUDIO, VIDEO

from .templates import FMP4_AUDIO, FMP4_VIDEO

__all__ = ["AUDIO", "DEFAULT_FRAME_MS", "VIDEO", "Frame", "IssueLog", "Track", "supported"]

#: Frame durations assumed before two frames of a track have been seen.
DEFAULT_FRAME_MS = {AUDIO: 21, VIDEO: 33}
_ISSUES_PER_CODE = 20


@dataclass(slots=True)
class Track:
    """The latest configuration of one track and where its timestamps stand."""

    codec: str | None = None
    config: bytes | None = None  # the parsed configuration record
    config_tag: bytes | None = None  # the whole tag body it came in
    last_dts: int | None = None
    frame_ms: int = 0


class Frame(NamedTuple):
    """One coded frame placed on the session timeline (milliseconds); a named tuple, as
    one is made for every frame."""

    video: bool
    dts: int
    cts: int
    data: bytes
    keyframe: bool
    arrival: float
    tag: bytes


def supported(kind: int, codec: str | None) -> bool:
    """Whether a track of this message type and codec can be segmented at all."""
    return codec in (FMP4_VIDEO if kind == VIDEO else FMP4_AUDIO)


class IssueLog:
    """Coded problems as ``{"code", "message", "at"}`` dicts; a few of each code at most,
    and problems with a ``key`` only once per session."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.items: list[dict[str, Any]] = []
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._once: set[str] = set()

    def record(self, code: str, message: str, *, key: str | None = None) -> None:
        if key is not None:
            if key in self._once:
                return
            self._once.add(key)
        self._counts[code] += 1
        if self._counts[code] <= _ISSUES_PER_CODE:
            self.items.append({"code": code, "message": message, "at": self._clock()})

    def seen(self, key: str) -> bool:
        return key in self._once
