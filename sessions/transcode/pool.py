"""The transcoder processes, as the session side sees them: :class:`TranscodePool`.

``[transcode] processes`` worker processes (started when the first session needs one)
each take whole sessions, the least busy first. Media goes to a process through a pipe fed
by a thread of its own, so :meth:`SessionRenditions.feed` never blocks the segmenter's
thread; the queue is bounded by ``max_queued_bytes`` per process: when a process is that
far behind, further frames of its sessions are dropped here (the renditions resume at the
next keyframe, :class:`~.interface.Gap`) instead of piling up. Reports come back through a
second pipe, read by one thread for all processes.

A process that dies (killed, out of memory, a crash in FFmpeg) ends only the renditions of
its sessions: each gets the issue ``transcode_failed``, its playlists are ended, its
``finish`` future is resolved; the next session that starts gets a new process. The source
segmenting never waits on any of it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import LogConfig, TranscodeConfig
from ingest.logs import log_event
from ingest.profiles import Profile
from sessions.hls.tracks import IssueLog
from sessions.recording import close_playlists, remove_partial_files

from .encoders import choose_encoder
from .interface import (
    FeedItem,
    Gap,
    MediaFrame,
    ProfileReport,
    RenditionSegment,
    RenditionsReport,
    RenditionsTarget,
    SourceInfo,
    TrackConfig,
)
from .ladder import EngineSettings
from .process import ProcessSettings, serve

__all__ = ["SessionRenditions", "TranscodePool", "TranscodeSettings"]

logger = logging.getLogger(__name__)

_MiB = 1024 * 1024
#: Bytes counted for an item besides its media (its share of the pickled message).
_ITEM_OVERHEAD = 64
#: Seconds :meth:`TranscodePool.close` waits for a process to end before killing it.
_STOP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class TranscodeSettings:
    """How the pool runs (``[transcode]``, plus what tests and benchmarks change)."""

    processes: int = 1
    preset: str = "veryfast"
    encoder: str = "auto"
    max_lag: float = 4.0
    #: Media bytes waiting for one process at most; beyond that, frames are dropped.
    max_queued_bytes: int = 32 * _MiB
    #: Wall clock of the processes (a picklable function).
    clock: Callable[[], float] = time.time
    #: How the processes log (as the server does); None leaves logging alone.
    log: LogConfig | None = None

    @classmethod
    def from_config(
        cls, config: TranscodeConfig, log: LogConfig | None = None
    ) -> TranscodeSettings:
        return cls(
            processes=config.processes,
            preset=config.preset,
            encoder=config.encoder,
            max_lag=config.max_lag,
            log=log,
        )


class _Worker:
    """One transcoder process and the thread that feeds it."""

    def __init__(self, index: int, pool: TranscodePool) -> None:
        context = multiprocessing.get_context("spawn")
        child_in, self.inbox = context.Pipe(duplex=False)
        self.outbox, child_out = context.Pipe(duplex=False)
        self.index = index
        self.process = context.Process(
            target=serve,
            args=(child_in, child_out, pool.process_settings),
            name=f"transcoder-{index}",
            daemon=True,
        )
        self.process.start()
        child_in.close()
        child_out.close()
        self.sessions: dict[str, SessionRenditions] = {}
        self.queued_bytes = 0
        self.alive = True
        self._messages: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(
            target=self._send_loop, name=f"transcoder-{index}-feed", daemon=True
        )
        self._sender.start()

    def send(self, message: tuple[Any, ...]) -> None:
        self._messages.put(message)

    def _send_loop(self) -> None:
        while (message := self._messages.get()) is not None:
            try:
                self.inbox.send(message)
            except (OSError, ValueError):
                break  # the process is gone: the reader finds out
        self.inbox.close()

    def stop_feeding(self) -> None:
        self._messages.put(None)

    def join_sender(self, timeout: float) -> None:
        self._sender.join(timeout)


class SessionRenditions:
    """One session's renditions in a transcoder process (a :class:`~.interface.Renditions`)."""

    def __init__(
        self,
        pool: TranscodePool,
        worker: _Worker,
        target: RenditionsTarget,
        profiles: Sequence[Profile],
    ) -> None:
        self.target = target
        self._pool = pool
        self._worker = worker
        self._profiles = tuple(profiles)
        self._lock = threading.Lock()
        self._report = RenditionsReport(
            [ProfileReport(p.name, p.width, p.height, p.bitrate, float(p.fps)) for p in profiles]
        )
        self._issues = IssueLog(time.time)
        self._segments: list[RenditionSegment] = []
        self._future: concurrent.futures.Future[RenditionsReport] = concurrent.futures.Future()
        #: Video frames dropped here since the last batch that got through.
        self._gap = 0
        #: Configurations in the batches dropped (the process still needs them).
        self._configs: dict[bool, TrackConfig] = {}
        self._finishing = False

    # -- Renditions -----------------------------------------------------------------------

    def feed(self, items: Sequence[FeedItem]) -> None:
        if self._finishing or self._future.done() or not items:
            return
        size = sum(
            len(item.data) + _ITEM_OVERHEAD if isinstance(item, MediaFrame) else _ITEM_OVERHEAD
            for item in items
        )
        if not self._pool._reserve(self._worker, size):
            self._dropped(items)
            return
        batch = list(items)
        with self._lock:
            if self._gap:
                batch = [Gap(self._gap), *self._configs.values(), *batch]
                self._gap = 0
                self._configs.clear()
        self._worker.send(("feed", self.target.session_id, batch, size))

    def report(self) -> RenditionsReport:
        with self._lock:
            report = dataclasses.replace(
                self._report,
                profiles=[dataclasses.replace(p) for p in self._report.profiles],
                issues=[*self._report.issues, *self._issues.items],
            )
            if self._gap:
                report.lagging = True
        return report

    def take_segments(self) -> list[RenditionSegment]:
        with self._lock:
            taken, self._segments = self._segments, []
        return taken

    def finish(self) -> concurrent.futures.Future[RenditionsReport]:
        if not self._finishing and not self._future.done():
            self._finishing = True
            with self._lock:
                gap, self._gap = self._gap, 0
            if gap:
                self._worker.send(("feed", self.target.session_id, [Gap(gap)], 0))
            self._worker.send(("finish", self.target.session_id))
        return self._future

    # -- from the pool ---------------------------------------------------------------------

    def _dropped(self, items: Sequence[FeedItem]) -> None:
        with self._lock:
            for item in items:
                if isinstance(item, MediaFrame):
                    self._gap += item.video
                elif isinstance(item, TrackConfig):
                    self._configs[item.video] = item

    def _update(
        self, report: RenditionsReport | None, segments: list[RenditionSegment], final: bool
    ) -> None:
        with self._lock:
            if report is not None:
                self._report = report
            self._segments.extend(segments)
        if final and not self._future.done():
            self._future.set_result(self.report())

    def _fail(self, why: str) -> None:
        """The process is gone: these renditions end as they are."""
        with self._lock:
            self._issues.record("transcode_failed", f"renditions stopped: {why}")
            self._report.failed = True
            for counters in self._report.profiles:
                if counters.state in ("pending", "running"):
                    counters.state = "failed"
        for profile in self._profiles:
            folder = Path(self.target.folder) / profile.name
            if folder.is_dir():
                close_playlists(folder)
                remove_partial_files(folder)
        if not self._future.done():
            self._future.set_result(self.report())


class TranscodePool:
    """Runs the renditions of every session of this process in worker processes (a
    :class:`~.interface.Transcoder`)."""

    def __init__(self, settings: TranscodeSettings) -> None:
        self.settings = settings
        #: The encoder the renditions use, decided here once (it may probe the GPU).
        self.encoder = choose_encoder(settings.encoder)
        log_event(
            logger,
            logging.INFO,
            "transcode_encoder",
            encoder=self.encoder.codec,
            reason=self.encoder.reason,
        )
        self.process_settings = ProcessSettings(
            EngineSettings(self.encoder.codec, settings.preset, settings.max_lag),
            settings.clock,
            settings.log,
        )
        self._lock = threading.Lock()
        self._workers: list[_Worker | None] = [None] * settings.processes
        self._reader: threading.Thread | None = None
        self._closed = False

    # -- Transcoder ------------------------------------------------------------------------

    def start(
        self,
        target: RenditionsTarget,
        profiles: Sequence[Profile],
        source: SourceInfo | None = None,
    ) -> SessionRenditions:
        with self._lock:
            if self._closed:
                raise RuntimeError("the transcoder pool is closed")
            worker = self._least_busy()
            handle = SessionRenditions(self, worker, target, profiles)
            worker.sessions[target.session_id] = handle
            worker.send(("start", target.session_id, target, tuple(profiles), source))
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read_loop, name="transcoder-reports", daemon=True
                )
                self._reader.start()
        return handle

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = [w for w in self._workers if w is not None]
        for worker in workers:
            worker.stop_feeding()
        for worker in workers:
            worker.join_sender(_STOP_TIMEOUT)
            worker.process.join(_STOP_TIMEOUT)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(_STOP_TIMEOUT)
        reader = self._reader
        if reader is not None:
            reader.join(_STOP_TIMEOUT)
        for worker in workers:
            self._died(worker, self._why_gone(worker))

    @property
    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        """The transcoder processes running now."""
        with self._lock:
            return [w.process for w in self._workers if w is not None and w.alive]

    # -- internals -------------------------------------------------------------------------

    def _least_busy(self) -> _Worker:
        """A process with no session if there is one (starting it if need be), else the
        one with the fewest sessions."""
        live: list[_Worker] = []
        for index, worker in enumerate(self._workers):
            if worker is None or not worker.alive:
                started = _Worker(index, self)
                self._workers[index] = started
                return started
            live.append(worker)
        return min(live, key=lambda w: (len(w.sessions), w.queued_bytes))

    def _reserve(self, worker: _Worker, size: int) -> bool:
        """Count ``size`` bytes as queued for ``worker``, unless that is too many."""
        with self._lock:
            if not worker.alive:
                return False
            if worker.queued_bytes and worker.queued_bytes + size > self.settings.max_queued_bytes:
                return False
            worker.queued_bytes += size
            return True

    def _read_loop(self) -> None:
        while True:
            with self._lock:
                workers = [w for w in self._workers if w is not None and w.alive]
                if self._closed and not workers:
                    return
            if not workers:
                time.sleep(0.05)
                continue
            waited: list[Any] = [w.outbox for w in workers] + [w.process.sentinel for w in workers]
            ready = set(multiprocessing.connection.wait(waited, timeout=0.5))
            for worker in workers:
                if worker.outbox in ready or worker.process.sentinel in ready:
                    self._read(worker, gone=worker.process.sentinel in ready)

    def _read(self, worker: _Worker, *, gone: bool) -> None:
        """Take every message waiting from ``worker``; it died if its pipe ended."""
        try:
            while worker.outbox.poll():
                self._dispatch(worker, worker.outbox.recv())
        except (EOFError, OSError):
            gone = True
        if gone:
            self._died(worker, self._why_gone(worker))

    def _why_gone(self, worker: _Worker) -> str:
        if self._closed:
            return "the transcoder was stopped"
        worker.process.join(1.0)
        code = worker.process.exitcode
        if code is not None and code < 0:
            return f"the transcoder process was killed (signal {-code})"
        return f"the transcoder process ended (exit code {code})"

    def _dispatch(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind, session = message[0], message[1]
        handle = worker.sessions.get(session)
        if kind == "report":
            _, _, report, segments, size = message
            with self._lock:
                worker.queued_bytes = max(0, worker.queued_bytes - size)
            if handle is not None:
                handle._update(report, segments, final=False)
        elif kind == "finished":
            _, _, report, segments = message
            with self._lock:
                worker.sessions.pop(session, None)
            if handle is not None:
                handle._update(report, segments, final=True)

    def _died(self, worker: _Worker, why: str) -> None:
        with self._lock:
            if not worker.alive and not worker.sessions:
                return
            worker.alive = False
            handles = list(worker.sessions.values())
            worker.sessions.clear()
            if self._workers[worker.index] is worker:
                self._workers[worker.index] = None
        worker.stop_feeding()
        if handles or not self._closed:
            log_event(
                logger,
                logging.ERROR if not self._closed else logging.INFO,
                "transcoder_stopped",
                process=worker.index,
                pid=worker.process.pid,
                reason=why,
                sessions=len(handles),
            )
        for handle in handles:
            try:
                handle._fail(why)
            except Exception as exc:
                log_event(logger, logging.ERROR, "transcode_fail_unrecorded", exc_info=exc)
        worker.outbox.close()
