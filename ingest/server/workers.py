"""Worker processes, as the main process runs them (``[rtmp] processes`` above 1).

Each worker process (:mod:`ingest.server.worker`) accepts publishers on the RTMP port,
which the workers share through ``SO_REUSEPORT`` (the kernel spreads new connections over
them), and runs its own sessions and segmenters, writing to the same store. What must be
decided once for the whole server is decided here, in the main process, by the one owner
of the live streams (:class:`~sessions.owner.StreamOwner`): every publish is authorized
and its stream granted here, each worker's sessions are reported here (the API's live
view), and each session ends as the owner says (a replaced publisher, a kick or a
disabled key reach the worker that has it); each worker's messages reach the owner
through its :class:`~sessions.remote.WorkerHolders`. When a worker dies, its sessions
are ended as ``server_restart`` (their playlists closed, their recordings made) and a
new worker takes its place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ingest.config import Config, config_to_dict
from ingest.logs import log_event
from ingest.server.channel import Channel
from sessions.manager import SessionManager
from sessions.metrics import ProcessMetrics
from sessions.owner import StreamOwner
from sessions.process_messages import (
    Apply,
    Failed,
    Hello,
    Message,
    Ready,
    Stats,
    Stop,
)
from sessions.remote import WorkerHolders
from sessions.writes import WriteHealth

logger = logging.getLogger("ingest.workers")

#: Seconds a new worker has to start listening.
READY_TIMEOUT = 30.0
#: Seconds before a dead worker is replaced; doubled while replacements keep dying young.
RESPAWN_DELAY = 0.5
RESPAWN_DELAY_MAX = 30.0
#: A worker that ran this long resets the respawn delay.
HEALTHY_RUN = 60.0
#: Environment a worker must not inherit: systemd's notification and socket handover
#: are the main process's.
_PRIVATE_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")
_PRIVATE_PREFIX = "LISTEN_FD"


def worker_environ() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name not in _PRIVATE_ENV and not name.startswith(_PRIVATE_PREFIX)
    }


@dataclasses.dataclass(eq=False)
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    ready: asyncio.Future[None] | None = None
    started_at: float = 0.0
    #: Its publishers, as the owner sees them (while its channel is open).
    holders: WorkerHolders | None = None
    loop_lag: dict[str, float] | None = None
    availability: dict[str, float] | None = None
    #: Its writes to the store, as of its last flush.
    store: WriteHealth | None = None
    #: Its metrics, as of its last flush.
    metrics: ProcessMetrics | None = None
    addresses: list[str] = dataclasses.field(default_factory=list)
    tls_addresses: list[str] = dataclasses.field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def number(self) -> int:
        """The worker's process number in the owner's holder keys (0 is this process)."""
        return self.index + 1


class WorkerPool:
    """Starts ``[rtmp] processes`` workers and keeps them running."""

    def __init__(
        self,
        config: Config,
        owner: StreamOwner,
        manager: SessionManager,
        *,
        public_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.owner = owner
        self.manager = manager
        self.public_url = public_url
        self.clock = clock
        self.started_at = clock()
        self.workers = [_Worker(i) for i in range(config.rtmp.processes)]
        self._fds: list[int] = []
        self._tls_fds: list[int] = []
        self._reserved: list[socket.socket] = []
        self._stopping = False
        self._watchers: set[asyncio.Task[None]] = set()
        self._delay = RESPAWN_DELAY
        #: What workers that exited had counted (their counters, not their gauges).
        self._retired = ProcessMetrics()

    # -- starting and stopping ----------------------------------------------------------

    async def start(
        self, sockets: Sequence[socket.socket] = (), *, tls_sockets: Sequence[socket.socket] = ()
    ) -> None:
        """Start every worker and return once all of them listen. With ``sockets``
        (systemd socket activation) the workers share those; otherwise each binds
        ``rtmp.listen`` with ``SO_REUSEPORT`` (port 0 is resolved to one free port first,
        which this process keeps bound so that no one else takes it). The same for
        ``tls_sockets`` and ``rtmps.listen`` with RTMPS on."""
        rtmp, rtmps = self.config.rtmp, self.config.rtmps
        if sockets:
            self._fds = [s.fileno() for s in sockets]
        elif rtmp.port == 0:
            rtmp = dataclasses.replace(rtmp, listen=self._reserve_port(rtmp.host))
        if tls_sockets:
            self._tls_fds = [s.fileno() for s in tls_sockets]
        elif rtmps.enabled and rtmps.port == 0:
            rtmps = dataclasses.replace(rtmps, listen=self._reserve_port(rtmps.host))
        self.config = dataclasses.replace(self.config, rtmp=rtmp, rtmps=rtmps)
        try:
            await asyncio.gather(*(self._spawn(worker) for worker in self.workers))
        except BaseException:
            await self.close()
            raise
        log_event(
            logger,
            logging.INFO,
            "workers_started",
            processes=len(self.workers),
            pids=",".join(str(w.pid) for w in self.workers),
        )

    def _reserve_port(self, host: str) -> str:
        """A free port on ``host``, kept bound here (with ``SO_REUSEPORT``, so that the
        workers can bind it too); the listen address that names it."""
        family, kind, proto, _, address = socket.getaddrinfo(
            host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        self._reserved.append(sock)
        port = sock.getsockname()[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def _spawn(self, worker: _Worker) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ingest.server.worker",
                str(child.fileno()),
                pass_fds=(child.fileno(), *self._fds, *self._tls_fds),
                env=worker_environ(),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        worker.started_at = self.clock()
        worker.ready = asyncio.get_running_loop().create_future()
        worker.channel = channel = Channel(
            parent,
            on_request=lambda message: self._on_request(worker, message),
            on_notice=lambda message: self._on_notice(worker, message),
            name=f"worker {worker.index}",
        )
        worker.holders = WorkerHolders(self.owner, channel, worker.number)
        await channel.start()
        watcher = asyncio.ensure_future(self._watch(worker, worker.channel, worker.process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        channel.notify(
            Hello(
                worker.index,
                config_to_dict(self.config),
                self.public_url,
                self._fds,
                self._tls_fds,
            )
        )
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), READY_TIMEOUT)
        except TimeoutError:
            raise OSError(f"RTMP worker {worker.index} did not start listening") from None

    async def _watch(
        self, worker: _Worker, channel: Channel, process: asyncio.subprocess.Process
    ) -> None:
        """Wait for the worker to go; end its sessions left live; replace it."""
        await channel.closed.wait()
        returncode = await process.wait()
        if worker.ready is not None and not worker.ready.done():
            worker.ready.set_exception(
                OSError(f"RTMP worker {worker.index} exited with status {returncode}")
            )
        orphans = worker.holders.lost() if worker.holders is not None else []
        worker.holders = None
        worker.store = None
        if worker.metrics is not None:
            self._retired = ProcessMetrics.combine([self._retired, worker.metrics.counters_only()])
            worker.metrics = None
        worker.channel = None
        if orphans:
            await self.manager.recover(orphans)
        if self._stopping:
            return
        ran = self.clock() - worker.started_at
        log_event(
            logger,
            logging.ERROR,
            "worker_exited",
            worker=worker.index,
            pid=process.pid,
            status=returncode,
            sessions_ended=len(orphans),
        )
        self._delay = (
            RESPAWN_DELAY if ran >= HEALTHY_RUN else min(self._delay * 2, RESPAWN_DELAY_MAX)
        )
        await asyncio.sleep(self._delay)
        if self._stopping:
            return
        try:
            await self._spawn(worker)
        except OSError as exc:
            log_event(
                logger, logging.ERROR, "worker_start_failed", worker=worker.index, error=str(exc)
            )

    async def close(self) -> None:
        """Stop every worker gracefully (each ends its sessions as ``shutdown``) and wait
        for them to exit."""
        self._stopping = True
        for worker in self.workers:
            if worker.channel is not None:
                worker.channel.notify(Stop())
        while self._watchers:
            await asyncio.gather(*list(self._watchers), return_exceptions=True)
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()

    def apply(self, config: Config) -> None:
        """Hand a reloaded configuration to the workers (they apply what can change)."""
        rtmp = dataclasses.replace(config.rtmp, listen=self.config.rtmp.listen)
        rtmps = dataclasses.replace(config.rtmps, listen=self.config.rtmps.listen)
        self.config = dataclasses.replace(config, rtmp=rtmp, rtmps=rtmps)
        for worker in self.workers:
            if worker.channel is not None:
                worker.channel.notify(Apply(config_to_dict(self.config)))

    @property
    def addresses(self) -> list[str]:
        return sorted({a for worker in self.workers for a in worker.addresses})

    @property
    def port(self) -> int:
        return int(self.addresses[0].rpartition(":")[2])

    @property
    def tls_addresses(self) -> list[str]:
        return sorted({a for worker in self.workers for a in worker.tls_addresses})

    @property
    def tls_port(self) -> int | None:
        addresses = self.tls_addresses
        return int(addresses[0].rpartition(":")[2]) if addresses else None

    # -- what workers ask and tell ------------------------------------------------------

    async def _on_request(self, worker: _Worker, message: Message) -> Any:
        if worker.holders is None:
            raise ValueError(f"worker {worker.index} is gone")
        return await worker.holders.request(message)

    def _on_notice(self, worker: _Worker, message: Message) -> None:
        if worker.holders is not None and worker.holders.notice(message):
            return
        if isinstance(message, Stats):
            worker.loop_lag = message.loop_lag
            worker.availability = message.availability
            worker.store = WriteHealth.from_dict(message.store)
            if message.metrics:
                worker.metrics = ProcessMetrics.from_dict(message.metrics)
        elif isinstance(message, Ready):
            worker.addresses = list(message.addresses)
            worker.tls_addresses = list(message.tls_addresses)
            if worker.ready is not None and not worker.ready.done():
                worker.ready.set_result(None)
        elif isinstance(message, Failed):
            if worker.ready is not None and not worker.ready.done():
                worker.ready.set_exception(OSError(message.error))
        else:
            raise ValueError(f"unknown notice {message.op!r}")

    # -- what the API reports -----------------------------------------------------------

    def processes(self) -> list[dict[str, Any]]:
        return [
            {"index": w.index, "pid": w.pid, "live_sessions": self.owner.holding(w.number)}
            for w in self.workers
        ]

    def loop_lag(self) -> dict[str, float] | None:
        """The worst worker's event-loop lag (each percentile its own maximum)."""
        return worst(*(w.loop_lag for w in self.workers))

    def segment_availability(self) -> dict[str, float] | None:
        return worst(*(w.availability for w in self.workers))

    def metrics(self) -> list[ProcessMetrics]:
        """Each running worker's metrics as of its last flush, and what the workers that
        exited had counted."""
        return [self._retired, *(w.metrics for w in self.workers if w.metrics is not None)]

    def store_health(self) -> list[WriteHealth]:
        """Each running worker's writes to the store, as of its last flush."""
        return [w.store for w in self.workers if w.store is not None]


def worst(*reports: dict[str, float] | None) -> dict[str, float] | None:
    """Percentile reports of several processes as one: each figure its highest."""
    merged: dict[str, float] | None = None
    for report in reports:
        if report is None:
            continue
        if merged is None:
            merged = dict(report)
        else:
            for key, value in report.items():
                merged[key] = max(merged.get(key, value), value)
    return merged
