"""Live health of one session: coded issues that open and close as the media flows.

The session manager calls :meth:`SessionHealth.tick` about once a second per live
session with the session's :class:`~sessions.accounting.MediaAccount`; the evaluator
reads the counters the account already keeps (bytes, frames and keyframes per track,
media timestamps) and compares them with what it saw at earlier ticks, so nothing is
added to the per-message path. Times are the manager's clock (tests pass a fake one).

The rules (the README's "Live health" section repeats them), with the
:class:`HealthRules` defaults:

* ``no_video`` / ``no_audio``: a track that sent frames sent none for ``track_stopped``
  (5) seconds; closes when its frames come back.
* ``bitrate_drop``: the media bytes received over the last ``drop_window`` (5) seconds,
  per second, are under ``rate_drop`` (50%) of the rate over the ``average_window`` (30)
  seconds before them; judged once at least ``min_history`` (10) seconds of that average
  exist, and opened only while media still arrives (a publisher that sends nothing at all
  is ``no_video``/``no_audio`` and ``ingest_drift``). Closes when the recent rate is back
  at ``rate_drop`` of the average. The average slides: a rate that stays low becomes the
  new average and the issue closes by itself within the window.
* ``fps_drop``: the same rule on the video frames received per second (while video
  frames arrive; a video track that stopped is ``no_video``, which closes ``fps_drop``).
* ``ingest_drift``: the media timestamps fall behind the wall clock by more than
  ``drift`` (2) seconds, measured from the point where the media was furthest ahead (so
  an encoder that starts with a burst, or buffers, is not blamed for it): the encoder or
  its uplink cannot keep up. Closes when the lag is back under half of ``drift``. A
  timestamp jump back of more than a second (an encoder reset) starts the measure again.
* ``keyframe_interval``: the main video track (lowest track id) went more than
  ``keyframe_interval`` (10) seconds of its media time without a keyframe (players and
  the segmenter need keyframes to start and cut). Closes at a keyframe that came within
  ``keyframe_interval`` of the one before it.

Each issue is a dict ``{"code", "message", "at", "started_at", "ended_at"}`` (``at`` is
``started_at``, the older entries' field); open while ``ended_at`` is ``None``. At most
:data:`MAX_PER_CODE` entries of one code are kept (the oldest closed ones go first).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sessions.accounting import MediaAccount, TrackStats

__all__ = [
    "HEALTH_CODES",
    "MAX_PER_CODE",
    "TRANSCODE_REALTIME",
    "HealthRules",
    "SessionHealth",
    "health_summary",
    "is_open",
    "merge_issues",
]

#: The codes this module opens and closes.
HEALTH_CODES = (
    "no_video",
    "no_audio",
    "bitrate_drop",
    "fps_drop",
    "ingest_drift",
    "keyframe_interval",
)
#: Entries of one code kept per session.
MAX_PER_CODE = 20
#: The renditions' issue while they are behind real time (raised by the transcoder, not
#: by these checks; the metrics count the sessions that have it open).
TRANSCODE_REALTIME = "transcode_realtime"
#: A jump back of the media timestamps larger than this (ms) restarts the drift measure.
_RESET_MS = 1000


@dataclass(frozen=True, slots=True)
class HealthRules:
    """The thresholds (see the module's docstring)."""

    track_stopped: float = 5.0
    rate_drop: float = 0.5
    drift: float = 2.0
    keyframe_interval: float = 10.0
    drop_window: float = 5.0
    average_window: float = 30.0
    min_history: float = 10.0


def is_open(issue: dict[str, Any]) -> bool:
    """Whether an issue is still open: ``ended_at`` null or absent (the segmenter's
    entries have none: they stay open for the rest of the session)."""
    return issue.get("ended_at") is None


def merge_issues(*groups: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issues from several sources in one list, oldest first."""
    merged = [issue for group in groups for issue in group]
    merged.sort(key=_started)
    return merged


def health_summary(issues: Sequence[dict[str, Any]]) -> str:
    """``healthy``, or ``unhealthy:`` and the open codes (the event log's reason)."""
    codes = sorted({str(issue.get("code")) for issue in issues if is_open(issue)})
    return "unhealthy: " + ", ".join(codes) if codes else "healthy"


def _started(issue: dict[str, Any]) -> float:
    value = issue.get("started_at", issue.get("at"))
    return float(value) if isinstance(value, int | float) else 0.0


class SessionHealth:
    """The live issues of one session; see the module's docstring."""

    def __init__(self, rules: HealthRules | None = None) -> None:
        self.rules = rules if rules is not None else HealthRules()
        #: Every issue this evaluator opened, oldest first.
        self.issues: list[dict[str, Any]] = []
        #: Bumped whenever :attr:`issues` changes (an issue opened or closed).
        self.version = 0
        self._open: dict[str, dict[str, Any]] = {}
        # Tracks: frames counted at the last tick, and when they last grew.
        self._frames: dict[str, int] = {"video": 0, "audio": 0}
        self._flowing_at: dict[str, float] = {}
        # Rates: (time, media bytes, video frames) at each tick, the last ~35 s.
        self._samples: deque[tuple[float, int, int]] = deque()
        # Drift: media milliseconds seen advancing, from the first tick.
        self._ts_ref: int | None = None
        self._media_ms = 0
        self._wall_start = 0.0
        self._max_offset = 0.0
        # Keyframes: the main video track's last keyframe timestamp at the last tick.
        self._key_ts: int | None = None

    @property
    def open_codes(self) -> list[str]:
        return list(self._open)

    def tick(self, now: float, account: MediaAccount) -> bool:
        """Evaluate every rule at ``now``; whether an issue opened or closed."""
        version = self.version
        video = audio = 0
        main_video: TrackStats | None = None
        for track in account.tracks.values():
            if track.kind == "video":
                video += track.frames
                if main_video is None or track.track_id < main_video.track_id:
                    main_video = track
            else:
                audio += track.frames
        self._tracks(now, "video", video)
        self._tracks(now, "audio", audio)
        self._rates(now, account.media_bytes, video)
        if account.first_ts is not None:
            self._drift(now, account.last_ts)
        if main_video is not None:
            self._keyframes(now, main_video)
        return self.version != version

    # -- the rules --------------------------------------------------------------------

    def _tracks(self, now: float, kind: str, frames: int) -> None:
        code = f"no_{kind}"
        if frames != self._frames[kind]:
            self._frames[kind] = frames
            self._flowing_at[kind] = now
            self._close(code, now)
            return
        since = self._flowing_at.get(kind)
        if frames and since is not None and now - since >= self.rules.track_stopped:
            self._start(code, now, f"no {kind} frame for {now - since:.1f} s")
            if kind == "video":
                self._close("fps_drop", now)

    def _rates(self, now: float, media_bytes: int, video_frames: int) -> None:
        samples = self._samples
        last = samples[-1] if samples else None
        samples.append((now, media_bytes, video_frames))
        rules = self.rules
        horizon = now - rules.drop_window - rules.average_window
        while len(samples) > 2 and samples[1][0] <= horizon:
            samples.popleft()
        if last is None:
            return
        recent = _sample_before(samples, now - rules.drop_window)
        first = samples[0]
        if recent is None or recent[0] - first[0] < rules.min_history or now <= recent[0]:
            return
        window, span = now - recent[0], recent[0] - first[0]
        self._compare(
            "bitrate_drop",
            now,
            rate=(media_bytes - recent[1]) / window,
            average=(recent[1] - first[1]) / span,
            flowing=media_bytes > last[1],
            unit="bytes/s",
        )
        if "no_video" not in self._open:
            self._compare(
                "fps_drop",
                now,
                rate=(video_frames - recent[2]) / window,
                average=(recent[2] - first[2]) / span,
                flowing=video_frames > last[2],
                unit="fps",
            )

    def _compare(
        self, code: str, now: float, *, rate: float, average: float, flowing: bool, unit: str
    ) -> None:
        if average <= 0:
            return
        if rate >= self.rules.rate_drop * average:
            self._close(code, now)
        elif flowing:
            self._start(
                code,
                now,
                f"{rate:.1f} {unit} over {self.rules.drop_window:g} s, under "
                f"{self.rules.rate_drop:.0%} of its {self.rules.average_window:g} s average "
                f"{average:.1f} {unit}",
            )

    def _drift(self, now: float, ts: int) -> None:
        ref = self._ts_ref
        if ref is None:
            self._ts_ref = ts
            self._wall_start = now
            return
        reset = False
        if ts >= ref:
            self._media_ms += ts - ref
            self._ts_ref = ts
        elif ts < ref - _RESET_MS:
            self._ts_ref = ts
            reset = True
        offset = self._media_ms / 1000 - (now - self._wall_start)
        if reset or offset > self._max_offset:
            self._max_offset = offset
        behind = self._max_offset - offset
        if behind > self.rules.drift:
            self._start("ingest_drift", now, f"media time {behind:.1f} s behind the wall clock")
        elif behind <= self.rules.drift / 2:
            self._close("ingest_drift", now)

    def _keyframes(self, now: float, track: TrackStats) -> None:
        key_ts = track.last_key_ts
        if key_ts is None:
            return
        limit = self.rules.keyframe_interval
        previous, self._key_ts = self._key_ts, key_ts
        if previous is not None and key_ts != previous and (key_ts - previous) / 1000 <= limit:
            self._close("keyframe_interval", now)
        since = (track.last_ts - key_ts) / 1000
        if since > limit:
            self._start(
                "keyframe_interval",
                now,
                f"no keyframe for {since:.1f} s of video (more than {limit:g} s)",
            )

    # -- issues -----------------------------------------------------------------------

    def _start(self, code: str, now: float, message: str) -> None:
        if code in self._open:
            return
        issue: dict[str, Any] = {
            "code": code,
            "message": message,
            "at": now,
            "started_at": now,
            "ended_at": None,
        }
        self._open[code] = issue
        self.issues.append(issue)
        same = [item for item in self.issues if item["code"] == code]
        if len(same) > MAX_PER_CODE:
            self.issues.remove(same[0])
        self.version += 1

    def _close(self, code: str, now: float) -> None:
        issue = self._open.pop(code, None)
        if issue is not None:
            issue["ended_at"] = now
            self.version += 1


def _sample_before(
    samples: deque[tuple[float, int, int]], at: float
) -> tuple[float, int, int] | None:
    """The newest sample taken at or before ``at``."""
    found = None
    for sample in samples:
        if sample[0] > at:
            break
        found = sample
    return found
