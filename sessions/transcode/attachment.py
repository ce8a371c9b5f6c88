"""Renditions as an attachment of a publish (:mod:`sessions.attachments`).

:class:`RenditionsFactory` is made once per process from ``[transcode]`` (and
``[hls]``: renditions are HLS variants, so there are none with HLS off). A publish whose
stream sets profiles, or that falls back to ``[transcode] default_profiles``, gets a
:class:`RenditionsAttachment`; one with none gets nothing, and its session is the source
only. When the session opens, its renditions start in the
:class:`~.pool.TranscodePool`'s worker processes (the pool is made, and its first process
started, by the first session that needs one) and the :class:`~.tap.RenditionsTap` is put
on the source segmenter: the segmenter's thread only queues media, cut where the source's
segments are cut.

Every refresh (on the event loop) copies the renditions' counters and issues into the
session record, measures the variants and, when they changed, has the live master playlist
written in the factory's own thread (:mod:`.variants`). At the end the renditions are
finished (awaited, bounded), the final counters written, and a recorded session's
``vod.m3u8`` made the master of the whole playlists before its recording is made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ingest.config import Config, LogConfig, TranscodeConfig
from ingest.logs import log_event
from ingest.profiles import Profile, ProfileError, parse_profiles
from ingest.rtmp.events import MediaReceived, MetadataReceived
from sessions.attachments import Attachment, PublishInfo
from sessions.health import TRANSCODE_REALTIME, is_open, merge_issues
from sessions.hls import MediaTap
from sessions.hls.master import Variant
from sessions.playback import LIVE_PLAYLIST, SOURCE_VOD_PLAYLIST, VOD_PLAYLIST
from storage.models import SessionRecord

from .interface import Renditions, RenditionsReport, RenditionsTarget, SourceInfo, Transcoder
from .pool import TranscodePool, TranscodeSettings
from .tap import RenditionsTap
from .variants import SourceCodecs, VariantMeter, write_live_master, write_vod_master

__all__ = ["RenditionsAttachment", "RenditionsFactory"]

logger = logging.getLogger(__name__)

#: The issue open while the renditions lag behind real time.
_LAGGING = TRANSCODE_REALTIME
#: Issues that make the session unhealthy: while they lag, and once they failed.
_OPEN_CODES = frozenset({_LAGGING, "transcode_failed"})


class RenditionsFactory:
    """Makes the renditions attachment of each publish that has profiles (an
    :class:`~sessions.attachments.AttachmentFactory`)."""

    def __init__(
        self,
        config: Config,
        *,
        transcoder: Callable[[], Transcoder] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.window = config.hls.window
        self.max_lag = config.transcode.max_lag
        value = config.hls.segment_format
        self.segment_format: Literal["auto", "mpegts", "fmp4"] = (
            "mpegts" if value == "mpegts" else "fmp4" if value == "fmp4" else "auto"
        )
        self._make_transcoder = transcoder or (
            lambda: TranscodePool(_settings(config.transcode, config.log))
        )
        self._transcoder: Transcoder | None = None
        #: Writes the master playlists, one at a time, in order.
        self.writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="renditions")
        self.apply(config)

    def apply(self, config: Config) -> None:
        """What may change without a restart: the default ladder (for the sessions that
        start from now on), the rate window. The transcoder's settings are fixed when
        the pool is made (``restart`` keys)."""
        self.default_ladder = config.transcode.default_ladder
        self.rate_window = config.sessions.rate_window

    async def start(self) -> None:
        """Make the pool in a thread, before the first publish: it decides its encoder
        once, which may open the GPU's (``encoder = "auto"``). Its processes start with
        the first session that needs one."""
        await asyncio.to_thread(lambda: self.transcoder)

    @property
    def transcoder(self) -> Transcoder:
        """The pool (made by :meth:`start`, or at the first session with renditions)."""
        if self._transcoder is None:
            self._transcoder = self._make_transcoder()
        return self._transcoder

    async def replace_transcoder(self, transcoder: Transcoder) -> None:
        """Use ``transcoder`` for the sessions that start from now on (the one in use is
        closed: call it with no session transcoding)."""
        old, self._transcoder = self._transcoder, transcoder
        if old is not None:
            await asyncio.to_thread(old.close)

    def __call__(self, publish: PublishInfo) -> Attachment | None:
        decision = publish.decision
        profiles = self.default_ladder
        if decision.profiles:
            try:
                profiles = parse_profiles(decision.profiles)
            except ProfileError as exc:  # checked when stored: only a bug gets here
                log_event(logger, logging.ERROR, "profiles_invalid", error=str(exc))
                return None
        if not profiles:
            return None
        return RenditionsAttachment(self, profiles)

    async def close(self) -> None:
        """Stop the transcoder processes and the writer (after the last session)."""
        transcoder, self._transcoder = self._transcoder, None
        if transcoder is not None:
            await asyncio.to_thread(transcoder.close)
        await asyncio.to_thread(self.writer.shutdown, True)


def _settings(config: TranscodeConfig, log: LogConfig) -> TranscodeSettings:
    return TranscodeSettings.from_config(config, log)


class RenditionsAttachment:
    """One publish's renditions (an :class:`~sessions.attachments.Attachment`)."""

    def __init__(self, factory: RenditionsFactory, profiles: Sequence[Profile]) -> None:
        self.factory = factory
        self.profiles = tuple(profiles)
        self.renditions: Renditions | None = None
        self.folder: Path | None = None
        self.meter = VariantMeter()
        #: What the session's earlier parts transcoded (a session continued after a
        #: reconnect gets a new attachment; its counters go on from these).
        self._earlier = _Earlier()
        self._fps = 0.0
        #: The renditions' issues as the session shows them, by (code, message, at).
        self._entries: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
        self._rate_samples: deque[tuple[float, int]] = deque()
        self._master: list[Variant] = []
        self._writes: list[asyncio.Future[Any]] = []
        self._report: RenditionsReport | None = None

    # -- Attachment --------------------------------------------------------------------

    def metadata(self, event: MetadataReceived) -> None:
        rate = event.values.get("framerate", event.values.get("fps"))
        if isinstance(rate, int | float) and 0 < rate <= 1000:
            self._fps = float(rate)

    def media(self, event: MediaReceived) -> None:
        """Nothing: the renditions take the media from the segmenter's tap."""

    def opened(self, record: SessionRecord, folder: Path | None) -> MediaTap | None:
        if folder is None:
            return None
        self._earlier = _Earlier.of(record)
        target = RenditionsTarget(
            record.id,
            folder,
            window=self.factory.window,
            record=record.record,
            segment_format=self.factory.segment_format,
            resume=record.reconnects > 0,
        )
        self.folder = folder
        self.renditions = self.factory.transcoder.start(
            target, self.profiles, SourceInfo(fps=self._fps)
        )
        log_event(
            logger,
            logging.INFO,
            "renditions_started",
            session=record.id,
            profiles=",".join(p.name for p in self.profiles),
        )
        return _Tap(self.renditions, self.meter.codecs)

    def refresh(self, record: SessionRecord, now: float, sample: bool) -> None:
        renditions = self.renditions
        if renditions is None:
            return
        report = self._report = renditions.report()
        for segment in renditions.take_segments():
            self.meter.rendition_segments(segment.profile, [segment.info])
        self.meter.source_counted(record)
        _counters(record, report, self.profiles, self._earlier)
        self._take_issues(record, report, now)
        if sample:
            self._sample(record, now)
        variants = self.meter.variants(record, report, LIVE_PLAYLIST)
        if variants and variants != self._master and self.folder is not None:
            self._master = variants
            self._write(write_live_master, self.folder, variants)

    async def finish(self, record: SessionRecord | None) -> None:
        renditions = self.renditions
        if renditions is None:
            return
        wait = max(30.0, 4 * self.factory.max_lag)
        try:
            async with asyncio.timeout(wait):
                await asyncio.wrap_future(renditions.finish())
        except TimeoutError:
            log_event(
                logger,
                logging.ERROR,
                "renditions_unfinished",
                session=record.id if record is not None else None,
                waited=wait,
            )
        if record is None:
            return
        self.refresh(record, self.factory.clock(), sample=False)
        record.outgoing_rate = 0.0  # nothing is being transcoded any more
        await self.written()
        if self.folder is not None and record.record and self._report is not None:
            variants = self.meter.variants(
                record, self._report, VOD_PLAYLIST, source_playlist=SOURCE_VOD_PLAYLIST
            )
            if variants:
                await self._write(write_vod_master, self.folder, variants)

    async def written(self) -> None:
        """Wait for the playlist writes asked so far."""
        await asyncio.gather(*self._writes, return_exceptions=True)

    # -- helpers -----------------------------------------------------------------------

    def _take_issues(self, record: SessionRecord, report: RenditionsReport, now: float) -> None:
        """The renditions' issues become the session's, beside the others, in the shape
        of :mod:`sessions.health` (open while ``ended_at`` is null): ``transcode_realtime``
        is open while the renditions lag, ``transcode_failed`` for the rest of the
        session; the others are notices, closed when they happen (a skipped profile
        leaves the session healthy)."""
        entries = self._entries
        for issue in report.issues:
            key = (issue.get("code"), issue.get("message"), issue.get("at"))
            if key in entries:
                continue
            code, at = issue.get("code"), issue.get("at")
            if code == _LAGGING:  # a new drop: an older one is over
                for entry in entries.values():
                    if entry["code"] == _LAGGING and entry["ended_at"] is None:
                        entry["ended_at"] = at
            lasting = code in _OPEN_CODES
            entries[key] = {**issue, "started_at": at, "ended_at": None if lasting else at}
        if not report.lagging:
            for entry in entries.values():
                if entry["code"] == _LAGGING and entry["ended_at"] is None:
                    entry["ended_at"] = now
        mine = list(entries.values())
        ours = {id(entry) for entry in mine}
        others = [issue for issue in record.issues if id(issue) not in ours]
        record.issues = merge_issues(others, mine)
        record.is_healthy = not any(is_open(issue) for issue in record.issues)

    def _sample(self, record: SessionRecord, now: float) -> None:
        samples = self._rate_samples
        samples.append((now, record.transcoded_bytes))
        while len(samples) > 2 and now - samples[1][0] >= self.factory.rate_window:
            samples.popleft()
        oldest_at, oldest_bytes = samples[0]
        if now > oldest_at:
            record.outgoing_rate = round(
                (record.transcoded_bytes - oldest_bytes) / (now - oldest_at)
            )

    def _write(self, write: Callable[..., object], *args: Any) -> asyncio.Future[Any]:
        """Run a playlist write in the factory's thread; a failure is logged."""
        future = asyncio.get_running_loop().run_in_executor(self.factory.writer, write, *args)
        self._writes = [w for w in self._writes if not w.done()] + [future]
        future.add_done_callback(_log_failure)
        return future


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log_event(
            logger, logging.ERROR, "master_playlist_write_failed", exc_info=future.exception()
        )


@dataclass(frozen=True, slots=True)
class _Earlier:
    """The transcoded counters of a session's earlier parts (none for a new session)."""

    segments: int = 0
    duration: float = 0.0
    bytes: int = 0
    profiles: tuple[dict[str, Any], ...] = ()
    renditions: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, record: SessionRecord) -> _Earlier:
        return cls(
            record.transcoded_segments,
            record.transcoded_segments_duration,
            record.transcoded_bytes,
            tuple(dict(p) for p in record.profiles),
            tuple(dict(r) for r in record.renditions),
        )


#: A profile's counters that add up across the parts of a session.
_SUMMED = ("segments", "bytes", "frames", "dropped_frames")


def _counters(
    record: SessionRecord,
    report: RenditionsReport,
    asked: Sequence[Profile],
    earlier: _Earlier,
) -> None:
    """The renditions' counters, as the ledger keeps them: this part's added to the
    earlier parts' (per profile by name)."""
    produced = {p.name for p in report.produced}
    profiles = [dict(p) for p in earlier.profiles]
    known = {p.get("name") for p in profiles}
    profiles += [p.to_json() for p in asked if p.name in produced and p.name not in known]
    record.profiles = profiles
    renditions = {r.get("name"): dict(r) for r in earlier.renditions}
    for part in report.profiles:
        if part.state not in ("running", "ended", "failed"):
            continue
        counters = part.as_json()
        before = renditions.get(part.name)
        if before is not None:
            for key in _SUMMED:
                counters[key] = int(before.get(key, 0)) + int(counters[key])
        renditions[part.name] = counters
    record.renditions = list(renditions.values())
    record.transcoded_segments = earlier.segments + report.transcoded_segments
    record.transcoded_segments_duration = round(
        earlier.duration + report.transcoded_segments_duration, 6
    )
    record.transcoded_bytes = earlier.bytes + report.transcoded_bytes


class _Tap(RenditionsTap):
    """The renditions' tap, which also notes the source's codecs for the master."""

    def __init__(self, renditions: Renditions, codecs: SourceCodecs) -> None:
        super().__init__(renditions)
        self._codecs = codecs

    def config(self, video: bool, codec: str, config: bytes, tag: bytes) -> None:
        super().config(video, codec, config, tag)
        self._codecs.seen(video, codec, config)
