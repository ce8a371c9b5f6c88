"""One worker process (``[rtmp] processes`` above 1; see :mod:`ingest.workers`).

It accepts publishers on the shared RTMP port, runs the sessions of the ones it accepted
and their segmenters, and writes them to the store. Keys and the one-publisher-per-stream
rule are the main process's: each publish is authorized there, over the channel it was
started with (``python -m ingest.worker FD``). It reports every session as it opens, at
every flush and once its end is stored. It stops gracefully (live sessions end as
``shutdown``) when the main process says so, when the main process goes away, or on
SIGTERM/SIGINT; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import sys
from typing import Any

from ingest.channel import Channel, ChannelClosed, Message
from ingest.config import config_from_dict
from ingest.eventloop import run_loop
from ingest.heap import limit_malloc_arenas, settle_heap
from ingest.hooks import Decision, PublishAttempt, PublisherControl, StreamSink
from ingest.listener import RtmpServer, number_connections_from
from ingest.logs import apply_log_config
from ingest.looplag import LoopLagMonitor
from ingest.runtime import database_path, media_executor, media_settings
from ingest.workers import attempt_to_dict, record_to_dict
from sessions.manager import SessionManager
from sessions.publishers import ReleasingSink
from storage import Store
from storage.models import SessionRecord

#: Connection ids of worker N start at N * this + 1, so that logs never mix two up.
CONNECTION_ID_SPAN = 10_000_000


class RemotePublishers:
    """The worker's authorizer and publish handler: the main process decides, the media
    stays here."""

    def __init__(self, channel: Channel, manager: SessionManager) -> None:
        self.channel = channel
        self.manager = manager
        self._controls: dict[int, PublisherControl] = {}
        #: Accepted, not started yet; and closes the main process asked for meanwhile.
        self._pending: set[int] = set()
        self._closing: dict[int, str] = {}

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        conn = attempt.connection_id
        try:
            answer = await self.channel.request("authorize", attempt=attempt_to_dict(attempt))
        except asyncio.CancelledError:
            # The connection went while its key was being checked: free what the main
            # process may have claimed for it.
            self.channel.notify("released", conn=conn)
            raise
        except ChannelClosed:
            return Decision(False, "NetStream.Publish.Denied", "server shutting down")
        decision = Decision(**answer)
        if not decision.allowed:
            return decision
        self._pending.add(conn)
        return dataclasses.replace(decision, release=lambda: self._release(conn))

    def started(
        self, attempt: PublishAttempt, control: PublisherControl, decision: Decision
    ) -> StreamSink:
        conn = attempt.connection_id
        self._pending.discard(conn)
        self._controls[conn] = control
        sink = ReleasingSink(
            self.manager.started(attempt, control, decision), lambda: self._release(conn)
        )
        reason = self._closing.pop(conn, None)
        if reason is not None:
            asyncio.get_running_loop().call_soon(control.close, reason)
        return sink

    def _release(self, conn: int) -> None:
        self._pending.discard(conn)
        self._closing.pop(conn, None)
        self._controls.pop(conn, None)
        self.channel.notify("released", conn=conn)

    def close(self, conn: int, reason: str) -> None:
        """The main process ends a publisher (replaced by one on another connection)."""
        control = self._controls.get(conn)
        if control is not None:
            control.close(reason)
        elif conn in self._pending:
            self._closing[conn] = reason


class _Reporter:
    """Tells the main process of this worker's sessions (see ``SessionObserver``)."""

    def __init__(self, channel: Channel, loop_lag: LoopLagMonitor) -> None:
        self.channel = channel
        self.loop_lag = loop_lag
        self.manager: SessionManager | None = None

    def opened(self, record: SessionRecord) -> None:
        self.channel.notify("opened", record=record_to_dict(record))

    def saved(self, records: list[SessionRecord]) -> None:
        manager = self.manager
        self.channel.notify(
            "saved",
            records=[record_to_dict(r) for r in records if r.status == "live"],
            loop_lag=self.loop_lag.snapshot(),
            availability=manager.segment_availability() if manager is not None else None,
            store=manager.writes.health().to_dict() if manager is not None else None,
        )

    def ended(self, record: SessionRecord) -> None:
        self.channel.notify("ended", session=record.id)


class Worker:
    def __init__(self, sock: socket.socket) -> None:
        self.channel = Channel(
            sock, on_request=self._on_request, on_notice=self._on_notice, name="main process"
        )
        self.hello: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.stop = asyncio.Event()
        self.manager: SessionManager | None = None
        self.publishers: RemotePublishers | None = None
        self.rtmp: RtmpServer | None = None

    async def _on_request(self, message: Message) -> Any:
        op = message.get("op")
        manager = self.manager
        if manager is None:
            return False
        if op == "kick":
            return await manager.kick(message["session"])
        if op == "end_stream":
            return await manager.end_stream(message["stream"], message["reason"])
        raise ValueError(f"unknown request {op!r}")

    def _on_notice(self, message: Message) -> None:
        op = message.get("op")
        if op == "hello":
            if not self.hello.done():
                self.hello.set_result(message)
        elif op == "close":
            if self.publishers is not None:
                self.publishers.close(message["conn"], message["reason"])
        elif op == "stop":
            self.stop.set()
        elif op == "apply":
            self._apply(message["config"])
        else:
            raise ValueError(f"unknown notice {op!r}")

    def _apply(self, data: dict[str, Any]) -> None:
        config = config_from_dict(data)
        if self.rtmp is not None:
            self.rtmp.apply(config.rtmp, config.rtmps)
        if self.manager is not None:
            self.manager.flush_interval = config.sessions.flush_interval
            self.manager.rate_window = config.sessions.rate_window
        apply_log_config(config.log)

    async def run(self) -> int:
        channel = self.channel
        await channel.start()
        closed = asyncio.ensure_future(channel.closed.wait())
        first: set[asyncio.Future[Any]] = {self.hello, closed}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not self.hello.done():
            return 1
        hello = self.hello.result()
        config = config_from_dict(hello["config"])
        apply_log_config(config.log)
        number_connections_from(hello["index"] * CONNECTION_ID_SPAN + 1)
        store = await Store.open(database_path(config), busy_timeout=config.storage.busy_timeout)
        executor = media_executor(config)
        loop_lag = LoopLagMonitor()
        reporter = _Reporter(channel, loop_lag)
        self.manager = manager = SessionManager(
            store,
            flush_interval=config.sessions.flush_interval,
            rate_window=config.sessions.rate_window,
            media=media_settings(config, executor, hello["public_url"]),
            observer=reporter,
        )
        reporter.manager = manager
        self.publishers = publishers = RemotePublishers(channel, manager)
        self.rtmp = rtmp = RtmpServer(config.rtmp, publishers, publishers, config.rtmps)
        code = 0
        try:
            await manager.start(recover=False)
            loop_lag.start()
            try:
                sockets = [socket.socket(fileno=fd) for fd in hello["fds"]]
                tls_sockets = [socket.socket(fileno=fd) for fd in hello.get("tls_fds", ())]
                await rtmp.start(sockets, reuse_port=True, tls_sockets=tls_sockets)
            except OSError as exc:
                channel.notify("failed", error=f"cannot listen on {config.rtmp.listen}: {exc}")
                code = 1
            else:
                channel.notify("ready", addresses=rtmp.addresses, tls_addresses=rtmp.tls_addresses)
                settle_heap()
                stop = asyncio.ensure_future(self.stop.wait())
                await asyncio.wait({stop, closed}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
        finally:
            rtmp.stop_accepting()
            await manager.close()
            await rtmp.close()
            loop_lag.stop()
            executor.shutdown(wait=True)
            await store.close()
            closed.cancel()
            await channel.close()
        return code


async def _main(fd: int) -> int:
    loop = asyncio.get_running_loop()
    worker = Worker(socket.socket(fileno=fd))

    def on_signal() -> None:
        if worker.stop.is_set():
            os._exit(1)
        worker.stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    # The main process re-reads the configuration and hands it over.
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    return await worker.run()


def main(argv: list[str]) -> int:
    result: list[int] = []

    async def run() -> None:
        result.append(await _main(int(argv[0])))

    limit_malloc_arenas()
    run_loop(run())
    return result[0] if result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
