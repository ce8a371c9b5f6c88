"""Worker processes, as the main process runs them (``[rtmp] processes`` above 1).

Each worker process (:mod:`ingest.worker`) accepts publishers on the RTMP port, which the
workers share through ``SO_REUSEPORT`` (the kernel spreads new connections over them), and
runs its own sessions and segmenters, writing to the same store. What must be decided once
for the whole server stays here, in the main process:

- keys: every publish is authorized here (throttling and the event log see every worker),
  and the one-publisher-per-stream rule holds across workers, because the stream is
  claimed here in the same step (a replaced publisher is closed in whichever worker has it);
- the live view: workers report each session as it opens, its counters at every flush, and
  its end once stored, so the API lists every worker's live sessions;
- crashes: when a worker dies, its sessions still live are ended as ``server_restart``
  (their playlists closed, their recordings made) and a new worker takes its place.
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

from ingest.channel import Channel, ChannelClosed, Message, RemoteError
from ingest.config import Config, config_to_dict
from ingest.hooks import Decision, PublishAttempt, PublisherControl, StreamSink
from ingest.logs import log_event
from sessions.manager import SessionManager
from sessions.publishers import LivePublishers
from sessions.writes import WriteHealth
from storage.models import SessionRecord

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


def attempt_to_dict(attempt: PublishAttempt) -> dict[str, Any]:
    return dataclasses.asdict(attempt)


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    return {
        f.name: getattr(decision, f.name)
        for f in dataclasses.fields(decision)
        if f.name != "release"
    }


def record_to_dict(record: SessionRecord) -> dict[str, Any]:
    return dataclasses.asdict(record)


def record_from_dict(data: dict[str, Any]) -> SessionRecord:
    return SessionRecord(**data)


class _NoMedia:
    """The main process's publish handler: the media goes to the worker, not here."""

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        return self

    def media(self, event: object) -> None:
        pass

    def metadata(self, event: object) -> None:
        pass

    def ended(self, cause: str, reason: str, bytes_received: int) -> None:
        pass


class _RemoteControl:
    """A publisher in a worker process, as the main process can act on it."""

    def __init__(self, worker: _Worker, connection_id: int) -> None:
        self.worker = worker
        self.connection_id = connection_id

    @property
    def bytes_received(self) -> int:
        return 0

    def close(self, reason: str) -> None:
        if self.worker.channel is not None:
            self.worker.channel.notify("close", conn=self.connection_id, reason=reason)


@dataclasses.dataclass(eq=False)
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    channel: Channel | None = None
    ready: asyncio.Future[None] | None = None
    started_at: float = 0.0
    #: Its live sessions, by id, with the counters of its last flush.
    live: dict[str, SessionRecord] = dataclasses.field(default_factory=dict)
    #: Accepted publishes (by connection id) and the hold each has on its stream.
    claims: dict[int, StreamSink] = dataclasses.field(default_factory=dict)
    authorizing: set[int] = dataclasses.field(default_factory=set)
    abandoned: set[int] = dataclasses.field(default_factory=set)
    loop_lag: dict[str, float] | None = None
    availability: dict[str, float] | None = None
    #: Its writes to the store, as of its last flush.
    store: WriteHealth | None = None
    addresses: list[str] = dataclasses.field(default_factory=list)
    tls_addresses: list[str] = dataclasses.field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class WorkerPool:
    """Starts ``[rtmp] processes`` workers, keeps them running, and is the live-session
    view (:class:`sessions.http.deps.LiveSessions`) the API reads."""

    def __init__(
        self,
        config: Config,
        publishers: LivePublishers,
        manager: SessionManager,
        *,
        public_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.publishers = publishers
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

    @staticmethod
    def main_handler() -> _NoMedia:
        """The publish handler of the main process's :class:`LivePublishers`."""
        return _NoMedia()

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
                "ingest.worker",
                str(child.fileno()),
                pass_fds=(child.fileno(), *self._fds, *self._tls_fds),
                env=worker_environ(),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        worker.started_at = self.clock()
        worker.ready = asyncio.get_running_loop().create_future()
        worker.channel = Channel(
            parent,
            on_request=lambda message: self._on_request(worker, message),
            on_notice=lambda message: self._on_notice(worker, message),
            name=f"worker {worker.index}",
        )
        await worker.channel.start()
        watcher = asyncio.ensure_future(self._watch(worker, worker.channel, worker.process))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        worker.channel.notify(
            "hello",
            index=worker.index,
            config=config_to_dict(self.config),
            public_url=self.public_url,
            fds=self._fds,
            tls_fds=self._tls_fds,
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
        for sink in worker.claims.values():
            sink.ended("worker_exited", "", 0)
        worker.claims.clear()
        worker.authorizing.clear()
        worker.abandoned.clear()
        orphans = list(worker.live)
        worker.live.clear()
        worker.store = None
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
                worker.channel.notify("stop")
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
                worker.channel.notify("apply", config=config_to_dict(self.config))

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
        if message.get("op") != "authorize":
            raise ValueError(f"unknown request {message.get('op')!r}")
        attempt = PublishAttempt(**message["attempt"])
        conn = attempt.connection_id
        worker.authorizing.add(conn)
        try:
            decision = await self.publishers.authorize(attempt)
        finally:
            worker.authorizing.discard(conn)
        if conn in worker.abandoned:
            worker.abandoned.discard(conn)
        elif decision.allowed and worker.channel is not None:
            # Claimed in the same step as the check: no other worker's publisher can
            # slip in between, and a replaced one is closed wherever it is.
            control = _RemoteControl(worker, conn)
            worker.claims[conn] = self.publishers.started(attempt, control, decision)
        return decision_to_dict(decision)

    def _on_notice(self, worker: _Worker, message: Message) -> None:
        op = message.get("op")
        if op == "opened":
            record = record_from_dict(message["record"])
            worker.live[record.id] = record
        elif op == "saved":
            for data in message["records"]:
                if data["id"] in worker.live:
                    worker.live[data["id"]] = record_from_dict(data)
            worker.loop_lag = message.get("loop_lag")
            worker.availability = message.get("availability")
            store = message.get("store")
            worker.store = WriteHealth.from_dict(store) if store is not None else None
        elif op == "ended":
            worker.live.pop(message["session"], None)
        elif op == "released":
            conn = message["conn"]
            sink = worker.claims.pop(conn, None)
            if sink is not None:
                sink.ended("released", "", 0)
            elif conn in worker.authorizing:
                worker.abandoned.add(conn)
        elif op == "ready":
            worker.addresses = list(message["addresses"])
            worker.tls_addresses = list(message.get("tls_addresses", ()))
            if worker.ready is not None and not worker.ready.done():
                worker.ready.set_result(None)
        elif op == "failed":
            if worker.ready is not None and not worker.ready.done():
                worker.ready.set_exception(OSError(message.get("error", "worker failed")))
        else:
            raise ValueError(f"unknown notice {op!r}")

    # -- the live view (for the API) ----------------------------------------------------

    def live_sessions(self) -> list[SessionRecord]:
        return [record for worker in self.workers for record in worker.live.values()]

    def live_session(self, stream_id: str) -> SessionRecord | None:
        for record in self.live_sessions():
            if record.stream_id == stream_id:
                return record
        return None

    def total_ingest_rate(self) -> float:
        return float(sum(record.ingest_rate for record in self.live_sessions()))

    async def kick(self, session_id: str) -> bool:
        for worker in self.workers:
            if session_id in worker.live and worker.channel is not None:
                return bool(await self._ask(worker, "kick", session=session_id))
        return False

    async def end_stream(self, stream_id: str, reason: str = "key_disabled") -> bool:
        """End the stream's live publish, in whichever worker has it."""
        answers = await asyncio.gather(
            *(
                self._ask(worker, "end_stream", stream=stream_id, reason=reason)
                for worker in self.workers
                if worker.channel is not None
            )
        )
        return any(answers)

    async def _ask(self, worker: _Worker, op: str, **fields: Any) -> Any:
        """A request to a worker; a worker that dies meanwhile answers False (what it
        had live is ended as ``server_restart``)."""
        channel = worker.channel
        if channel is None:
            return False
        try:
            return await channel.request(op, **fields)
        except ChannelClosed:
            return False
        except RemoteError as exc:
            log_event(logger, logging.ERROR, "worker_request_failed", op=op, error=str(exc))
            return False

    def processes(self) -> list[dict[str, Any]]:
        return [
            {"index": w.index, "pid": w.pid, "live_sessions": len(w.live)} for w in self.workers
        ]

    def loop_lag(self) -> dict[str, float] | None:
        """The worst worker's event-loop lag (each percentile its own maximum)."""
        return worst(*(w.loop_lag for w in self.workers))

    def segment_availability(self) -> dict[str, float] | None:
        return worst(*(w.availability for w in self.workers))

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
