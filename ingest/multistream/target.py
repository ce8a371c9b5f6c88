"""One target of a live stream over asyncio: connect (``rtmp://`` or ``rtmps://``),
handshake, ``connect``/``createStream``/``publish`` with the target's key (the core's
client role), then the source's packets from its :class:`~ingest.multistream.backlog.Backlog`,
written as they are queued. A target that refuses, drops or stalls is tried again with
backoff for as long as the session lasts; its counters and events go to the observer.

Nothing here logs or raises the target's key: peers' messages are redacted with the URL's
:meth:`~ingest.rtmp.url.RtmpUrl.redact`, and the URL is only ever shown masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import cast

from ingest.multistream.backlog import CHUNK_SIZE, Backlog, Packet
from ingest.multistream.model import (
    FAILED_AFTER,
    EventKind,
    ForwardSettings,
    MultistreamObserver,
    Target,
    TargetEvent,
    TargetStats,
    TargetStatus,
)
from ingest.rtmp.client import ClientConnection
from ingest.rtmp.errors import LocalProtocolError
from ingest.rtmp.events import NEED_DATA, ConnectionTerminated, PublishStarted, StatusReceived

#: Bytes handed to the transport in one write at most (the rest waits in the backlog).
_BATCH = 256 * 1024
#: The transport's own buffer: above it, writing pauses and the backlog holds the rest.
_HIGH_WATER = 256 * 1024
#: The kernel's send buffer of a target connection (Linux doubles it: 1 MiB, 27 Mb/s at
#: 300 ms round trip). Fixed, so that what a stalled target has not taken waits in the
#: backlog, where it can be skipped up to a keyframe, rather than in an autotuned kernel
#: buffer (4 MiB here: seconds of stale media for a target that comes back).
SEND_BUFFER = 512 * 1024
FLASH_VER = "FMLE/3.0 (compatible; rtmp-ingest)"


class _Failed(Exception):
    """An attempt or a connection ended; the message (key masked) says why."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to a target."""

    def __init__(self, link: TargetLink) -> None:
        self.link = link
        url = link.target.url
        self.conn = ClientConnection(
            app=url.app,
            stream_name=url.key,
            tc_url=url.tc_url,
            flash_ver=FLASH_VER,
            chunk_size=CHUNK_SIZE,
        )
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.published: asyncio.Future[None] = loop.create_future()
        #: Resolved with why the connection ended.
        self.done: asyncio.Future[str] = loop.create_future()
        self.paused = False
        self._stall: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._send_own()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, PublishStarted):
                if not self.published.done():
                    self.published.set_result(None)
            elif isinstance(event, StatusReceived):
                self.fail(f"refused: {event.code} {event.description}".strip())
                return
            elif isinstance(event, ConnectionTerminated):
                self.fail(f"{event.cause}: {event.reason}")
                return
        self._send_own()

    def eof_received(self) -> bool:
        self.fail("closed by the target")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        # Gone: not aborted again (from here, that would close the socket twice).
        self.transport = None
        self.fail(f"connection lost: {exc}" if exc else "closed by the target")

    def pause_writing(self) -> None:
        self.paused = True
        if self._stall is None and self.link.settings.stall_timeout:
            self._stall = asyncio.get_running_loop().call_later(
                self.link.settings.stall_timeout, self._stalled
            )

    def resume_writing(self) -> None:
        self.paused = False
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self.link.pump()

    # -- ours ---------------------------------------------------------------------------

    def _stalled(self) -> None:
        self._stall = None
        self.fail(f"stalled: took no bytes for {self.link.settings.stall_timeout:g}s")

    def _send_own(self) -> None:
        """What the client role has queued (commands, acknowledgements, pongs)."""
        data = self.conn.data_to_send()
        if data:
            self.write([data])

    def write(self, pieces: list[bytes]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.link.bytes_sent += sum(len(p) for p in pieces)
        if len(pieces) == 1:
            transport.write(pieces[0])
        else:
            transport.writelines(pieces)

    @property
    def writable(self) -> bool:
        return (
            not self.paused
            and self.transport is not None
            and not self.transport.is_closing()
            and not self.done.done()
        )

    @property
    def buffered(self) -> int:
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def fail(self, reason: str) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        reason = self.link.target.url.redact(reason)
        if not self.published.done():
            self.published.set_exception(_Failed(reason))
            self.published.exception()  # retrieved: a failure before publishing is expected
        if not self.done.done():
            self.done.set_result(reason)
        if self.transport is not None:
            self.transport.abort()

    def finish(self) -> None:
        """End a live publish the way encoders do (``FCUnpublish``, ``deleteStream``),
        then close once what is buffered is written."""
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self.done.done():
            with contextlib.suppress(LocalProtocolError):
                self.conn.unpublish()
            self._send_own()
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result("session ended")


class TargetLink:
    """One target for the length of one session: its backlog, its connections in turn,
    and its counters."""

    def __init__(
        self,
        target: Target,
        settings: ForwardSettings,
        headers: Callable[[], Iterable[Packet]],
        observer: MultistreamObserver | None,
        tls: Callable[[], ssl.SSLContext],
    ) -> None:
        self.target = target
        self.settings = settings
        self.backlog = Backlog(settings.max_buffer)
        self._headers = headers
        self._observer = observer
        self._tls = tls
        self._loop = asyncio.get_running_loop()
        self.status = TargetStatus.CONNECTING
        self.bytes_sent = 0
        self.media_bytes = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self._connected = 0.0
        self._live_since: float | None = None
        self._connection: _Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pump_scheduled = False
        self._closing = False

    # -- feeding ------------------------------------------------------------------------

    def offer(self, packet: Packet) -> None:
        if self.backlog.offer(packet, self._headers) and not self._pump_scheduled:
            connection = self._connection
            if connection is not None and self._live_since is not None:
                # Once per loop turn: a read's messages go out in one write.
                self._pump_scheduled = True
                self._loop.call_soon(self.pump)

    def pump(self) -> None:
        """Write what waits, while the connection takes it."""
        self._pump_scheduled = False
        connection = self._connection
        if connection is None or self._live_since is None:
            return
        backlog = self.backlog
        stream_id = connection.conn.stream_id
        while connection.writable and backlog.queue:
            pieces: list[bytes] = []
            size = 0
            while size < _BATCH and (packet := backlog.take()) is not None:
                data = packet.encoded(stream_id)
                pieces.append(data)
                size += len(data)
                self.media_bytes += packet.media_size
            connection.write(pieces)

    # -- the connections ----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        settings = self.settings
        delay = settings.retry_min
        failures = 0
        fresh = True  # the first attempt: the backlog holds the session from its start
        while not self._closing:
            try:
                connection = await self._connect()
            except _Failed as exc:
                failures += 1
                if fresh:
                    fresh = False
                    self.backlog.lost()
                self.last_error = str(exc)
                self.status = (
                    TargetStatus.FAILED if failures >= FAILED_AFTER else TargetStatus.RETRYING
                )
                self._emit(EventKind.ERROR, self.last_error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.retry_max)
                continue
            if not fresh:
                self.reconnects += 1
                self.backlog.rejoin()
            fresh = False
            failures = 0
            self._connection = connection
            self._live_since = since = self._loop.time()
            self.status = TargetStatus.LIVE
            self._emit(EventKind.CONNECTED)
            self.pump()
            reason = await connection.done
            if self._closing:
                return  # close() ends it and reports
            self._went_down()
            self.backlog.lost()
            self.last_error = reason
            self.status = TargetStatus.RETRYING
            self._emit(EventKind.DISCONNECTED, reason)
            if self._loop.time() - since >= settings.retry_max:
                delay = settings.retry_min
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.retry_max)

    async def _connect(self) -> _Connection:
        url = self.target.url
        connection = _Connection(self)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                await self._loop.create_connection(
                    lambda: connection,
                    url.host,
                    url.port,
                    ssl=self._tls() if url.tls else None,
                    server_hostname=url.host if url.tls else None,
                )
                await connection.published
        except TimeoutError:
            connection.fail(f"no publish within {self.settings.connect_timeout:g}s")
            raise _Failed(
                f"timed out: not publishing within {self.settings.connect_timeout:g}s"
            ) from None
        except _Failed:
            raise
        except (OSError, ssl.SSLError) as exc:
            connection.fail(str(exc))
            raise _Failed(url.redact(_describe(exc))) from None
        except BaseException:
            connection.fail("cancelled")
            raise
        return connection

    def _went_down(self) -> None:
        if self._live_since is not None:
            self._connected += self._loop.time() - self._live_since
            self._live_since = None
        self._connection = None

    async def close(self) -> TargetStats:
        """End this target with the session: a live one (or one whose first connection is
        still being made, with the session queued for it) first gets what is queued, up to
        ``drain_timeout``; then the publish ends as an encoder ends it."""
        self._closing = True
        loop = self._loop
        deadline = loop.time() + self.settings.drain_timeout
        while (
            self.status is TargetStatus.CONNECTING
            and self._live_since is None
            and self.backlog.queue
            and loop.time() < deadline
        ):
            await asyncio.sleep(0.01)
        connection = self._connection
        if connection is not None and self._live_since is not None:
            while (
                (self.backlog.queue or connection.buffered)
                and not connection.done.done()
                and loop.time() < deadline
            ):
                self.pump()
                await asyncio.sleep(0.01)
            was_live = not connection.done.done()
            reason = "session ended" if was_live else connection.done.result()
            connection.finish()
            self._went_down()
            self.backlog.lost()
            self.status = TargetStatus.ENDED
            self._emit(EventKind.DISCONNECTED, reason)
        else:
            self.backlog.lost()
            self.status = TargetStatus.ENDED
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.stats()

    # -- counters -----------------------------------------------------------------------

    def stats(self) -> TargetStats:
        connected = self._connected
        if self._live_since is not None:
            connected += self._loop.time() - self._live_since
        connection = self._connection
        return TargetStats(
            target_id=self.target.id,
            name=self.target.name,
            status=self.status,
            connected_seconds=connected,
            bytes_sent=self.bytes_sent,
            reconnects=self.reconnects,
            skipped_bytes=self.backlog.skipped_bytes,
            last_error=self.last_error,
            media_bytes=self.media_bytes,
            buffered_bytes=self.backlog.queued_bytes
            + (connection.buffered if connection is not None else 0),
        )

    def _emit(self, kind: EventKind, reason: str | None = None) -> None:
        if self._observer is not None:
            self._observer.target_event(TargetEvent(kind, self.target, self.stats(), reason))


def _describe(exc: BaseException) -> str:
    """An error as a log line shows it (the key is never in it: nothing here puts it in)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
