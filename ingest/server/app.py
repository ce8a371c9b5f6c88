"""Running the server: the store, the session ledger, the RTMP listener and the HTTP API in
one event loop, as a well-behaved daemon.

Signals: SIGTERM/SIGINT stop gracefully (every live session ends as ``shutdown`` at its
last packet, the store is flushed, exit 0; writes a locked or full database still refuses
after :data:`sessions.writes.FLUSH_TIMEOUT` seconds are given up and counted in the log);
a second one forces an immediate exit (SQLite's journal keeps the store intact). SIGHUP
re-reads the configuration and applies what can change live. Under systemd it reports
``READY=1`` once listening with crash recovery done, a ``STATUS=`` line, watchdog pings
from the event loop, and ``RELOADING=1``/``STOPPING=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from ingest.config import RESTART_KEYS, Config, ConfigError, changed_keys, load_config
from ingest.listener import RtmpServer, listening_addresses
from ingest.logs import log_event
from ingest.server.heap import settle_heap
from ingest.server.looplag import LoopLagMonitor
from ingest.server.runtime import SessionSide, apply_live, build_sessions, process_metrics
from ingest.server.systemd import (
    ActivatedSockets,
    Notifier,
    activated_sockets,
    journal_stream,
    run_watchdog,
    watchdog_interval,
)
from ingest.server.workers import WorkerPool, worst
from sessions.http.app import create_app
from sessions.http.server import http_server
from sessions.http.views import ingest_rtmps_url, ingest_url, ingest_urls, public_http_url
from sessions.manager import SHUTTING_DOWN
from sessions.metrics import ProcessMetrics
from sessions.owner import StreamOwner
from sessions.playback import Playback
from sessions.streams import Streams
from sessions.webhooks.dispatcher import DeliveryPolicy, Dispatcher
from sessions.webhooks.payload import Payloads
from sessions.writes import WriteHealth
from storage import Store
from storage.models import EndReason

logger = logging.getLogger("ingest.app")

DEFAULT_STREAM = "default"
#: Seconds between sweeps for recordings past their retention.
RETENTION_SWEEP_INTERVAL = 3600.0
#: Seconds between STATUS= refreshes under systemd.
STATUS_INTERVAL = 5.0
#: Seconds shutdown waits for the few writes queued after the session manager's flush
#: (viewer seconds, refused publishes).
LATE_WRITES_TIMEOUT = 2.0


def admin_token(config: Config) -> str:
    """The configured token, or the one kept in the data directory (made on first use)."""
    if config.http.admin_token:
        return config.http.admin_token
    path = Path(config.storage.data_dir) / "admin_token"
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    log_event(logger, logging.INFO, "admin_token_created", path=str(path))
    return token


def delivery_policy(config: Config) -> DeliveryPolicy:
    """How webhook deliveries are sent and retried (``[webhooks]``)."""
    hooks = config.webhooks
    return DeliveryPolicy(
        timeout=hooks.timeout,
        retry_min=hooks.retry_min,
        retry_max=hooks.retry_max,
        give_up_after=hooks.give_up_after,
        poll_interval=hooks.poll_interval,
        keep_days=hooks.keep_days,
    )


class IngestServer:
    """Every part of a running server, started and stopped in order."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.ready = False
        public_url = public_http_url(config)
        # With worker processes, this process holds no publishers: its session manager
        # ends the sessions a crash left open (the whole server's, or one worker's) and
        # sweeps recordings, and its owner decides for every worker.
        self.sessions: SessionSide = build_sessions(config, store, public_url)
        assert self.sessions.owner is not None and self.sessions.streams is not None
        self.manager = self.sessions.manager
        self.owner: StreamOwner = self.sessions.owner
        self.streams: Streams = self.sessions.streams
        self.executor = self.sessions.executor
        self.loop_lag = LoopLagMonitor()
        self.retention_days = config.hls.retention_days
        self.rtmp: RtmpServer | None = None
        self.pool: WorkerPool | None = None
        #: What accepts publishers: this process's listener, or the worker processes.
        self.front: RtmpServer | WorkerPool
        if config.rtmp.processes > 1:
            self.pool = self.front = WorkerPool(
                config, self.owner, self.manager, public_url=public_url
            )
        else:
            self.rtmp = self.front = RtmpServer(
                config.rtmp, self.manager, self.manager, config.rtmps
            )
        self.playback = Playback(store, self.owner, config.storage.media_root, self.manager.writes)
        app = create_app(
            store=store,
            streams=self.streams,
            live=self.owner,
            config=config,
            admin_token=admin_token(config),
            is_ready=lambda: self.ready,
            playback=self.playback if config.hls.enabled else None,
            playback_base=public_url,
            loop_lag=self._loop_lag,
            segment_availability=(
                self.manager.segment_availability
                if self.pool is None
                else self.pool.segment_availability
            ),
            processes=self.processes,
            store_health=self.store_health,
            metrics=self.metrics,
            metrics_public=config.http.metrics_public,
        )
        self.http = http_server(app, config.http)
        # Webhook deliveries go out from this process only (workers write the events).
        self.webhooks = Dispatcher(
            store,
            Payloads(
                store,
                ingest_urls=ingest_urls(config),
                playback_base=public_url if config.hls.enabled else None,
            ),
            delivery_policy(config),
        )
        self._http_task: asyncio.Task[None] | None = None
        self._viewer_task: asyncio.Task[None] | None = None

    async def _flush_viewers(self) -> None:
        """Write viewer seconds every flush interval; sweep old recordings hourly."""
        swept_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.playback.flush()
                if loop.time() - swept_at >= RETENTION_SWEEP_INTERVAL:
                    swept_at = loop.time()
                    removed = await self.manager.sweep_recordings(self.retention_days)
                    if removed:
                        log_event(
                            logger,
                            logging.INFO,
                            "recordings_deleted",
                            count=removed,
                            older_than_days=self.retention_days,
                        )
            except Exception as exc:
                log_event(logger, logging.ERROR, "housekeeping_failed", exc_info=exc)
            await asyncio.sleep(self.manager.flush_interval)

    def _loop_lag(self) -> dict[str, float] | None:
        """This process's event-loop lag, or the worst of it and the workers'."""
        own = self.loop_lag.snapshot()
        return own if self.pool is None else worst(own, self.pool.loop_lag())

    def processes(self) -> list[dict[str, Any]]:
        """The processes that accept publishers, and their live sessions."""
        if self.pool is not None:
            return self.pool.processes()
        live = len(self.owner.live_sessions())
        return [{"index": 0, "pid": os.getpid(), "live_sessions": live}]

    def metrics(self) -> ProcessMetrics:
        """What ``GET /metrics`` shows: this process's, and the worker processes' (as of
        their last report, with what exited workers had counted) added up."""
        own = process_metrics(self.manager, self.rtmp, self.loop_lag)
        own.webhook_deliveries = dict(self.webhooks.results)
        own.webhook_pending = self.webhooks.pending
        if self.pool is None:
            return own
        return ProcessMetrics.combine([own, *self.pool.metrics()])

    def store_health(self) -> WriteHealth:
        """The writes to the store: this process's, and the worker processes' (as of their
        last report)."""
        own = self.manager.writes.health()
        if self.pool is None:
            return own
        return WriteHealth.combine([own, *self.pool.store_health()])

    async def start(self, activated: ActivatedSockets | None) -> None:
        await self.sessions.start()
        self.webhooks.start()
        self.loop_lag.start()
        self._viewer_task = asyncio.ensure_future(self._flush_viewers())
        if activated is not None:
            await self.front.start(activated.rtmp, tls_sockets=activated.rtmps)
        else:
            await self.front.start()
        sockets = activated.http if activated and activated.http else None
        self._http_task = asyncio.ensure_future(self.http.serve(sockets=sockets))
        while not self.http.started and not self._http_task.done():
            await asyncio.sleep(0.01)
        if self._http_task.done():
            self._http_task.result()
            raise OSError(f"the HTTP API could not listen on {self.config.http.listen}")

    @property
    def http_addresses(self) -> list[str]:
        return listening_addresses(self.http.servers)

    def status(self) -> str:
        sessions = self.owner.live_sessions()
        rate = sum(s.ingest_rate for s in sessions) * 8 / 1e6
        line = f"{len(sessions)} live sessions, ingest {rate:.1f} Mb/s"
        store = self.store_health()
        if store.status == "degraded":
            line += f"; store degraded, {store.pending_writes} writes pending"
        return line

    def apply(self, config: Config) -> None:
        """Apply what can change while running (every key not in :data:`RESTART_KEYS`)."""
        if self.pool is not None:
            self.pool.apply(config)
        apply_live(config, self.sessions, self.rtmp)
        self.webhooks.policy = delivery_policy(config)
        self.retention_days = config.hls.retention_days
        kept = {name: getattr(self.config, name) for name in ("http", "hls", "storage")}
        self.config = dataclasses.replace(
            config,
            rtmp=dataclasses.replace(config.rtmp, listen=self.config.rtmp.listen),
            rtmps=dataclasses.replace(config.rtmps, listen=self.config.rtmps.listen),
            **kept,
        )

    async def stop(self) -> None:
        self.ready = False
        log_event(
            logger, logging.INFO, "shutting_down", live_sessions=len(self.owner.live_sessions())
        )
        # Every publish, in whichever process, ends as the server's stop.
        self.owner.end_all(EndReason.SHUTDOWN, SHUTTING_DOWN)
        if self.pool is not None:
            await self.pool.close()
        if self.rtmp is not None:
            self.rtmp.stop_accepting()
        await self.sessions.close()
        if self.rtmp is not None:
            await self.rtmp.close()
        if self._http_task is not None:
            self.http.should_exit = True
            with contextlib.suppress(Exception):
                await self._http_task
        if self._viewer_task is not None:
            self._viewer_task.cancel()
        self.loop_lag.stop()
        await self.webhooks.close()
        self.playback.flush()
        await self.manager.writes.flush(LATE_WRITES_TIMEOUT)
        self.executor.shutdown(wait=True)


async def _first_run(server: IngestServer, url: str) -> None:
    """On a fresh store, create the ``default`` stream and show its key once."""
    _, total = await server.store.list_streams(limit=1)
    if total:
        return
    stream, key = await server.streams.create(DEFAULT_STREAM)
    log_event(logger, logging.INFO, "stream_created", stream=stream.id, name=stream.name)
    if journal_stream():
        # Stdout is the journal: keep the key out of it.
        print(
            f'Created stream "{DEFAULT_STREAM}". Its key is not shown here because this '
            f"output goes to the journal; run `rtmp-ingest streams rotate-key "
            f"{DEFAULT_STREAM}` to get one.",
            flush=True,
        )
        return
    print(
        f'Created stream "{DEFAULT_STREAM}". In OBS: Settings > Stream > Service: Custom\n'
        f"  Server:     {url}\n"
        f"  Stream Key: {key}\n"
        f"The key is shown only this once (`rtmp-ingest streams rotate-key "
        f"{DEFAULT_STREAM}` makes a new one).",
        flush=True,
    )


async def _reload(server: IngestServer, path: str | None, notifier: Notifier | None) -> None:
    if notifier is not None:
        await notifier.reloading()
    try:
        new = load_config(path)
    except ConfigError as exc:
        log_event(
            logger,
            logging.ERROR,
            "reload_rejected",
            errors="; ".join(exc.errors),
            detail="the running configuration is kept",
        )
    else:
        changed = changed_keys(server.config, new)
        restart = [key for key in changed if key in RESTART_KEYS]
        server.apply(new)
        log_event(
            logger,
            logging.INFO,
            "reloaded",
            changed=",".join(k for k in changed if k not in RESTART_KEYS) or "-",
            needs_restart=",".join(restart) or "-",
        )
    if notifier is not None:
        await notifier.ready(server.status())


async def _report_status(server: IngestServer, notifier: Notifier) -> None:
    while True:
        await asyncio.sleep(STATUS_INTERVAL)
        await notifier.status(server.status())


async def serve(config: Config, config_path: str | None = None) -> None:
    """Run until SIGINT or SIGTERM, then end every session as ``shutdown`` and return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hup: asyncio.Queue[None] = asyncio.Queue()

    def on_stop() -> None:
        if stop.is_set():
            # A second signal: go now. SQLite's journal keeps the store consistent.
            log_event(logger, logging.WARNING, "forced_exit")
            sys.stderr.flush()
            os._exit(1)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop)
    loop.add_signal_handler(signal.SIGHUP, hup.put_nowait, None)
    notifier = await Notifier.from_environ()
    activated = activated_sockets()
    store = await Store.open(config.storage.database_path, busy_timeout=config.storage.busy_timeout)
    server = IngestServer(config, store)
    background: list[asyncio.Task[None]] = []
    try:
        await server.start(activated)
        url = ingest_url(config, server.front.port)
        await _first_run(server, url)
        server.ready = True
        settle_heap()
        print(f"Publish to {url}/<stream key>", flush=True)
        tls_port = server.front.tls_port
        if tls_port is not None:
            print(f"  or over TLS to {ingest_rtmps_url(config, tls_port)}/<stream key>")
            print(f"RTMPS on {' '.join(server.front.tls_addresses)}", flush=True)
        print(
            f"RTMP on {' '.join(server.front.addresses)}; "
            f"HTTP API on {' '.join(server.http_addresses)}",
            flush=True,
        )
        if notifier is not None:
            await notifier.ready(server.status())
            background.append(asyncio.ensure_future(_report_status(server, notifier)))
            interval = watchdog_interval()
            if interval is not None:
                background.append(asyncio.ensure_future(run_watchdog(notifier, interval)))
        while not stop.is_set():
            wait_stop = asyncio.ensure_future(stop.wait())
            wait_hup = asyncio.ensure_future(hup.get())
            await asyncio.wait({wait_stop, wait_hup}, return_when=asyncio.FIRST_COMPLETED)
            wait_stop.cancel()
            if wait_hup.done() and not stop.is_set():
                await _reload(server, config_path, notifier)
            else:
                wait_hup.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        # A signal during shutdown still forces the exit.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_stop)
        if notifier is not None:
            await notifier.stopping()
        await server.stop()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await store.close()
        if notifier is not None:
            notifier.close()
        sys.stdout.flush()
