"""Running the server: the store, the session ledger, the RTMP listener and the HTTP API in
one event loop, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Generator
from pathlib import Path

import uvicorn

from ingest.config import Config
from ingest.listener import RtmpServer
from ingest.logs import log_event
from sessions.auth import KeyAuthorizer
from sessions.http.app import create_app
from sessions.http.views import ingest_url
from sessions.manager import SessionManager
from sessions.publishers import DuplicatePolicy, LivePublishers
from sessions.streams import Streams
from storage import Store

logger = logging.getLogger("ingest.app")

DEFAULT_STREAM = "default"


def database_path(config: Config) -> Path:
    """The SQLite file: ``storage.database``, inside ``storage.data_dir`` when relative."""
    return Path(config.storage.data_dir) / config.storage.database


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


class _HttpServer(uvicorn.Server):
    """uvicorn in our loop: the signals are ours, not its."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _first_run(streams: Streams, store: Store, url: str) -> None:
    """On a fresh store, create the ``default`` stream and show its key once."""
    _, total = await store.list_streams(limit=1)
    if total:
        return
    stream, key = await streams.create(DEFAULT_STREAM)
    log_event(logger, logging.INFO, "stream_created", stream=stream.id, name=stream.name)
    if os.environ.get("JOURNAL_STREAM"):
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


async def serve(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then end every session as ``shutdown`` and return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready = False
    store = await Store.open(database_path(config))
    manager = SessionManager(
        store,
        flush_interval=config.sessions.flush_interval,
        rate_window=config.sessions.rate_window,
    )
    streams = Streams(store, on_disabled=manager.end_stream)
    authorizer = KeyAuthorizer(
        streams,
        store,
        reject_delay=(config.sessions.reject_delay_min, config.sessions.reject_delay_max),
        throttle_failures=config.sessions.throttle_failures,
        throttle_window=config.sessions.throttle_window,
    )
    policy: DuplicatePolicy = (
        "reject" if config.sessions.duplicate_publish == "reject" else "replace"
    )
    publishers = LivePublishers(authorizer, manager, policy)
    rtmp = RtmpServer(config.rtmp, publishers, publishers)
    app = create_app(
        store=store,
        streams=streams,
        live=manager,
        config=config,
        admin_token=admin_token(config),
        is_ready=lambda: ready,
    )
    http_host, _, http_port = config.http.listen.rpartition(":")
    http = _HttpServer(
        uvicorn.Config(
            app,
            host=http_host.strip("[]") or "0.0.0.0",
            port=int(http_port),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    http_task: asyncio.Task[None] | None = None
    try:
        await manager.start()
        await rtmp.start()
        http_task = asyncio.ensure_future(http.serve())
        while not http.started and not http_task.done():
            await asyncio.sleep(0.01)
        if http_task.done():
            http_task.result()
            raise OSError(f"the HTTP API could not listen on {config.http.listen}")
        url = ingest_url(config, rtmp.port)
        await _first_run(streams, store, url)
        ready = True
        http_addresses = [
            f"{s.getsockname()[0]}:{s.getsockname()[1]}"
            for server in http.servers
            for s in server.sockets
        ]
        print(f"Publish to {url}/<stream key>", flush=True)
        print(
            f"RTMP on {' '.join(rtmp.addresses)}; HTTP API on {' '.join(http_addresses)}",
            flush=True,
        )
        await stop.wait()
    finally:
        ready = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log_event(logger, logging.INFO, "shutting_down", live_sessions=len(manager.live_sessions()))
        await manager.close()
        await rtmp.close()
        if http_task is not None:
            http.should_exit = True
            with contextlib.suppress(Exception):
                await http_task
        await store.close()
        sys.stdout.flush()
