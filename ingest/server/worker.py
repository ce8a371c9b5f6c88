"""One worker process (``[rtmp] processes`` above 1; see :mod:`ingest.server.workers`).

It accepts publishers on the shared RTMP port, runs the sessions of the ones it accepted
and their segmenters, and writes them to the store. Who may publish, and how each session
ends, is the main process's to decide: this process's session manager asks the owner there
through a :class:`~sessions.remote.RemoteSessions`, over the channel it was started with
(``python -m ingest.server.worker FD``), and it reports its loop lag and store health
every flush. It stops gracefully (live sessions end as ``shutdown``) when the main
process says so, when the main process goes away, or on SIGTERM/SIGINT; a second signal
exits at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import Any

from ingest.config import config_from_dict
from ingest.listener import RtmpServer, number_connections_from
from ingest.logs import apply_log_config
from ingest.server.channel import Channel
from ingest.server.eventloop import run_loop
from ingest.server.heap import limit_malloc_arenas, settle_heap
from ingest.server.looplag import LoopLagMonitor
from ingest.server.runtime import SessionSide, apply_live, build_sessions, process_metrics
from sessions.process_messages import Apply, Close, Failed, Hello, Message, Ready, Stats, Stop
from sessions.remote import RemoteSessions
from storage import Store

#: Connection ids of worker N start at N * this + 1, so that logs never mix two up.
CONNECTION_ID_SPAN = 10_000_000


class Worker:
    def __init__(self, sock: socket.socket) -> None:
        self.channel = Channel(
            sock, on_request=self._on_request, on_notice=self._on_notice, name="main process"
        )
        self.hello: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self.stop = asyncio.Event()
        #: The owner of the live streams, in the main process.
        self.owner = RemoteSessions(self.channel)
        self.sessions: SessionSide | None = None
        self.rtmp: RtmpServer | None = None
        self.loop_lag = LoopLagMonitor()

    async def _on_request(self, message: Message) -> Any:
        raise ValueError(f"unknown request {message.op!r}")

    def _on_notice(self, message: Message) -> None:
        if isinstance(message, Hello):
            if not self.hello.done():
                self.hello.set_result(message)
        elif isinstance(message, Close):
            self.owner.close(message)
        elif isinstance(message, Stop):
            self.stop.set()
        elif isinstance(message, Apply):
            if self.sessions is not None:
                apply_live(config_from_dict(message.config), self.sessions, self.rtmp)
        else:
            raise ValueError(f"unknown notice {message.op!r}")

    async def _report(self, sessions: SessionSide) -> None:
        """Tell the main process this process's loop lag, segment availability and
        store health, every flush interval."""
        manager = sessions.manager
        while True:
            await asyncio.sleep(manager.flush_interval)
            self.channel.notify(
                Stats(
                    self.loop_lag.snapshot(),
                    manager.segment_availability(),
                    manager.writes.health().to_dict(),
                    process_metrics(manager, self.rtmp, self.loop_lag).to_dict(),
                )
            )

    async def run(self) -> int:
        channel = self.channel
        await channel.start()
        closed = asyncio.ensure_future(channel.closed.wait())
        first: set[asyncio.Future[Any]] = {self.hello, closed}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not self.hello.done():
            return 1
        hello = self.hello.result()
        config = config_from_dict(hello.config)
        apply_log_config(config.log)
        number_connections_from(hello.index * CONNECTION_ID_SPAN + 1)
        store = await Store.open(
            config.storage.database_path, busy_timeout=config.storage.busy_timeout
        )
        self.sessions = sessions = build_sessions(
            config, store, hello.public_url, owner=self.owner, process=hello.index + 1
        )
        manager = sessions.manager
        self.rtmp = rtmp = RtmpServer(config.rtmp, manager, manager, config.rtmps)
        report: asyncio.Task[None] | None = None
        code = 0
        try:
            await sessions.start(recover=False)
            self.loop_lag.start()
            report = asyncio.ensure_future(self._report(sessions))
            try:
                sockets = [socket.socket(fileno=fd) for fd in hello.fds]
                tls_sockets = [socket.socket(fileno=fd) for fd in hello.tls_fds]
                await rtmp.start(sockets, reuse_port=True, tls_sockets=tls_sockets)
            except OSError as exc:
                channel.notify(Failed(f"cannot listen on {config.rtmp.listen}: {exc}"))
                code = 1
            else:
                channel.notify(Ready(rtmp.addresses, rtmp.tls_addresses))
                settle_heap()
                stop = asyncio.ensure_future(self.stop.wait())
                await asyncio.wait({stop, closed}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
        finally:
            rtmp.stop_accepting()
            await sessions.close()
            await rtmp.close()
            if report is not None:
                report.cancel()
            self.loop_lag.stop()
            sessions.executor.shutdown(wait=True)
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
