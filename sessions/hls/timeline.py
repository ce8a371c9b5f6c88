"""The session's media timeline: 32-bit RTMP timestamps made continuous and monotonic.

Timestamps are unwrapped (one :class:`~ingest.flv.TimestampUnwrapper` for the whole
session, audio and video sharing it so they stay aligned) and rebased so the session
starts at 0 ms. A step back of more than ``back_ms`` or forward of more than
``forward_ms`` from the highest timestamp seen so far is a discontinuity (an encoder
restart, a broken clock): the timeline is rebased again so the new packet lands one
frame after the highest timestamp, and the output never goes backwards.
"""

from __future__ import annotations

from typing import NamedTuple

from ingest.flv import TimestampUnwrapper

__all__ = ["Placement", "Timeline"]


class Placement(NamedTuple):
    """Where one message lands: ``ms`` on the output timeline; ``jump`` is 0, or the
    size of the discontinuity found (negative for a jump back) in milliseconds."""

    ms: int
    jump: int


class Timeline:
    """Unwraps and rebases message timestamps; detects discontinuities."""

    __slots__ = ("_back", "_forward", "_high", "_offset", "_unwrapper")

    def __init__(self, *, back_ms: int = 1000, forward_ms: int = 10_000) -> None:
        self._unwrapper = TimestampUnwrapper()
        self._back = back_ms
        self._forward = forward_ms
        self._offset: int | None = None
        self._high = 0

    def place(self, timestamp: int, step: int) -> Placement:
        """Place a message; ``step`` is the gap to leave after a discontinuity (about one
        frame duration)."""
        extended = self._unwrapper.unwrap(timestamp)
        if self._offset is None:
            self._offset = -extended
            return Placement(0, 0)
        ms = extended + self._offset
        jump = 0
        if ms < self._high - self._back or ms > self._high + self._forward:
            jump = ms - self._high
            self._offset = self._high + step - extended
            ms = self._high + step
        if ms > self._high:
            self._high = ms
        return Placement(ms, jump)

    @property
    def high(self) -> int:
        """The highest output timestamp so far (ms)."""
        return self._high
