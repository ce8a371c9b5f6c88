"""Running the server: the listener with its authorizer and publish handler, until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal

from ingest.config import Config
from ingest.hooks import AllowAll, LoggingHandler
from ingest.listener import RtmpServer
from ingest.logs import log_event
from sessions.publishers import LivePublishers

logger = logging.getLogger("ingest.app")


async def serve(config: Config, *, started: asyncio.Event | None = None) -> None:
    """Accept publishers until SIGINT or SIGTERM, then close every connection and return."""
    publishers = LivePublishers(
        AllowAll(),
        LoggingHandler(),
        "reject" if config.sessions.duplicate_publish == "reject" else "replace",
    )
    server = RtmpServer(config.rtmp, publishers, publishers)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for address in server.addresses:
        host, _, port = address.rpartition(":")
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        print(
            f"Publish to rtmp://{shown}:{port}/{config.rtmp.app} with any stream key.", flush=True
        )
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log_event(logger, logging.INFO, "shutting_down", connections=len(server.connections))
        await server.close()
