"""Extending 32-bit RTMP millisecond timestamps to an unbounded timeline.

RTMP timestamps are 32-bit milliseconds and wrap after about 49.7 days. They are also
not strictly monotonic: audio and video interleave, B-frame streams and some encoders
step backwards by a few milliseconds, and a restarted encoder may jump anywhere.

:class:`TimestampUnwrapper` interprets each new value *relative to the previous one*:
the difference is taken modulo 2**32 and read as a signed 32-bit number, then added to a
running 64-bit (Python int) total. So

* ``0xFFFFFFF0`` then ``0x00000010`` is a step of +0x20 (a wrap, not a jump back of
  49 days),
* ``1000`` then ``990`` is a step of -10 (a small backward step stays small), and
* a jump of more than 2**31 ms (~24.8 days) in either direction is read as the shorter
  way round the circle.

The extended value can go below zero (a first timestamp of 5 followed by 0xFFFFFFFB is
-5) and can go backwards; callers that need a monotonic clock, or that want to re-base
after a large discontinuity, do so on top of the extended values.
"""

from __future__ import annotations

__all__ = ["TimestampUnwrapper"]

_MASK = 0xFFFF_FFFF
_HALF = 0x8000_0000
_SPAN = 0x1_0000_0000


class TimestampUnwrapper:
    """Turns a sequence of 32-bit ms timestamps into an extended timeline.

    Use one instance per timeline that should be continuous (per track, or per stream
    when audio and video share a clock). The first value fed is taken as is.

    >>> u = TimestampUnwrapper()
    >>> u.unwrap(0xFFFFFFF0), u.unwrap(0x10)
    (4294967280, 4294967312)
    """

    __slots__ = ("_extended", "_last")

    def __init__(self) -> None:
        self._last: int | None = None
        self._extended = 0

    def unwrap(self, timestamp: int) -> int:
        """Feed the next 32-bit timestamp; return its position on the extended timeline.

        Values outside 0..2**32-1 are reduced modulo 2**32 first.
        """
        timestamp &= _MASK
        last = self._last
        if last is None:
            self._extended = timestamp
        else:
            delta = (timestamp - last) & _MASK
            if delta >= _HALF:
                delta -= _SPAN
            self._extended += delta
        self._last = timestamp
        return self._extended

    @property
    def last(self) -> int | None:
        """The extended value most recently returned, ``None`` before the first."""
        return None if self._last is None else self._extended

    def reset(self) -> None:
        """Forget the history: the next value fed starts the timeline afresh."""
        self._last = None
        self._extended = 0
