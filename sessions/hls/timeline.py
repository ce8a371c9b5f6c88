"""The session's media timeline: 32-bit RTMP timestamps made continuous and monotonic.

Timestamps are unwrapped (one :class:`~ingest.flv.TimestampUnwrapper` for the whole
session, audio and video sharing it so they stay aligned) and rebased so the session
starts at 0 ms. A step back of more than ``back_ms`` or forward of more than
``forward_ms`` from the highest timestamp seen so far is a discontinuity (an encoder
restart, a broken clock): the timeline is rebased again so the new packet lands one
frame after the highest timestamp, and the output never goes backwards.
"""

from __future__ import annotations

from ingest.flv import TimestampUnwrapper

__all__ = ["Timeline"]


class Timeline:
    """Unwraps and rebases message timestamps; detects discontinuities."""

    __slots__ = ("_back", "_forward", "_high", "_offset", "_unwrapper", "jump")

    def __init__(self, *, back_ms: int = 1000, forward_ms: int = 10_000) -> None:
        self._unwrapper = TimestampUnwrapper()
        self._back = back_ms
        self._forward = forward_ms
        self._offset: int | None = None
        self._high = 0
        #: 0, or the size of the discontinuity the last :meth:`place` found (negative for
        #: a jump back), in milliseconds.
        self.jump = 0

    def place(self, timestamp: int, step: int) -> int:
        """Where a message lands on the output timeline (ms); ``step`` is the gap to leave
        after a discontinuity (about one frame duration). Sets :attr:`jump`. (Once per
        frame: an int, no tuple.)"""
        extended = self._unwrapper.unwrap(timestamp)
        offset = self._offset
        if offset is None:
            self._offset = -extended
            self.jump = 0
            return 0
        ms = extended + offset
        high = self._high
        if ms < high - self._back or ms > high + self._forward:
            self.jump = ms - high
            self._offset = high + step - extended
            ms = high + step
        else:
            self.jump = 0
        if ms > high:
            self._high = ms
        return ms

    @property
    def high(self) -> int:
        """The highest output timestamp so far (ms)."""
        return self._high
