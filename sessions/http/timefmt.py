"""Times and durations as the API and the CLI show them, and the times they accept.

Out: ISO 8601 UTC with milliseconds and a ``Z`` ("2026-11-21T19:24:10.123Z"); durations as
float seconds rounded to the millisecond. In: ISO 8601 with or without a ``Z`` or an
offset (naive means UTC), or epoch seconds from :data:`MIN_TIME` to :data:`MAX_TIME`
(the years 1 to 9999, all that ISO 8601 can show).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The earliest time accepted and shown: 0001-01-01T00:00:00.000Z, in epoch seconds.
MIN_TIME = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()
#: The latest: 9999-12-31T23:59:59.999Z.
MAX_TIME = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH).total_seconds()


def format_time(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds, e.g. ``2026-11-21T19:24:10.123Z``."""
    millis = round(ts * 1000)
    moment = _EPOCH + timedelta(milliseconds=millis)
    # %Y does not pad years before 1000 on every platform.
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{millis % 1000:03d}Z"


def format_display_time(ts: float | None) -> str:
    """A time for people (tables): ``2026-11-21 19:24:10`` (UTC), or ``-``."""
    if ts is None:
        return "-"
    return format_time(ts)[:19].replace("T", " ")


def format_optional_time(ts: float | None) -> str | None:
    return None if ts is None else format_time(ts)


def round_seconds(value: float) -> float:
    """A duration (or rate) rounded to the millisecond, for JSON."""
    return round(float(value), 3)


def parse_time(text: str) -> float:
    """Epoch seconds from ISO 8601 (naive = UTC) or from a number of epoch seconds.

    Raises :class:`ValueError` with a readable message for anything else.
    """
    value = text.strip()
    if not value:
        raise ValueError("expected a time, got an empty value")
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise ValueError(f"expected a finite number of epoch seconds, got {text!r}")
        if not MIN_TIME <= number <= MAX_TIME:
            raise ValueError(
                f"epoch seconds must be from {MIN_TIME:.0f} to {MAX_TIME:.3f} "
                f"(the years 1 to 9999), got {text!r}"
            )
        return number
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"expected ISO 8601 (e.g. 2026-11-21T19:24:10Z) or epoch seconds, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # An offset can carry the first or last day of the years 1-9999 past them in UTC; as a
    # bound of a time range such a moment means the same as the limit.
    return min(max((moment - _EPOCH).total_seconds(), MIN_TIME), MAX_TIME)


def parse_optional_time(text: str | None) -> float | None:
    return None if text is None else parse_time(text)
