"""The asyncio RTMP listener: a thin adapter around the sans-IO core.

Each TCP connection gets one :class:`~ingest.rtmp.server.ServerConnection`. The adapter
feeds it bytes, drains its events, writes what it has to send, and keeps one timer armed
at ``get_timer()`` (re-armed lazily when it fires, so a read does not move it). Reading
pauses while a publish is being authorized and while the peer does not read what we
write, and, once a connection is publishing, for ``rtmp.read_interval`` after a read that
took everything waiting (a timer per connection): bytes that arrive meanwhile wait in the
kernel and come in one read, so a real-time publisher costs a few larger reads instead of
one read (and one loop wake-up) per message. A read that came back full (the loop's
largest) may have left bytes behind, so reading goes on at once: pacing saves wake-ups
but never limits throughput. One tick for all connections instead made the reads come
in bursts, and segmenting fell behind. Any failure is contained to its own connection.

With ``[rtmps] listen`` the same server also accepts RTMP over TLS on a second address:
those connections run their bytes through a :class:`~ingest.tls.TlsLayer` and are
otherwise the same (limits, caps on pending connections, deadlines, sessions). The TLS
handshake happens inside the RTMP handshake deadline, counted from the accept.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from collections.abc import Sequence
from typing import cast

from ingest.admission import Admission
from ingest.config import RtmpConfig, RtmpsConfig
from ingest.hooks import Decision, PublishAttempt, PublishAuthorizer, PublishHandler, StreamSink
from ingest.logs import log_event
from ingest.rtmp import events as ev
from ingest.rtmp.events import NEED_DATA, EndCause
from ingest.rtmp.server import REJECT_CODES, ServerConnection
from ingest.tls import Certificate, TlsFailed, TlsLayer, load_certificate

logger = logging.getLogger("ingest.listener")
_ids = itertools.count(1)

#: The most one read of uvloop's returns (its loop's receive buffer, 256,000 bytes);
#: asyncio's socket transports say theirs as ``max_size`` (256 KiB).
UVLOOP_READ_SIZE = 256_000
#: Bytes asked of the kernel at a time when a connection we close takes what waits.
_TAKE_SIZE = 256 * 1024


def full_read_size(transport: asyncio.BaseTransport) -> int:
    """The size of a read that came back full from ``transport``: one that may have left
    bytes waiting in the kernel."""
    size = getattr(transport, "max_size", None)
    return size if isinstance(size, int) and size > 0 else UVLOOP_READ_SIZE


def number_connections_from(first: int) -> None:
    """Number this process's connections from ``first`` on (worker processes each take
    their own range, so that a connection id names one connection in the logs)."""
    global _ids
    _ids = itertools.count(first)


class RtmpProtocol(asyncio.Protocol):
    """One publisher's TCP connection."""

    def __init__(self, server: RtmpServer, *, tls: bool = False) -> None:
        self.server = server
        #: Whether this connection came in on the RTMPS address.
        self.tls_port = tls
        self.tls: TlsLayer | None = None
        self.id = next(_ids)
        self.remote_addr = "-"
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.sink: StreamSink | None = None
        self.encoder: str | None = None
        self.tc_url: str | None = None
        #: The address this connection counts against while pending (not publishing yet).
        self._pending_address: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._auth_task: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._write_blocked = False
        self._full_read = UVLOOP_READ_SIZE
        #: Reading held after a read until ``rtmp.read_interval`` has passed.
        self._paced = False
        self._done = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        host = ""
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote_addr = f"{peer[0]}:{peer[1]}"
            host = str(peer[0])
        server = self.server
        address = server.admission.admit(
            server.config, len(server.connections), host, self.remote_addr
        )
        if address is None:
            transport.abort()
            self._done = True
            return
        self._pending_address = address
        server.connections.add(self)
        if self.tls_port:
            certificate = server.certificate
            assert certificate is not None
            self.tls = TlsLayer(certificate.context)
        cfg = server.config
        self.conn = ServerConnection(
            limits=server.limits,
            clock=self.loop.time,
            chunk_size=cfg.chunk_size,
            idle_timeout=cfg.idle_timeout,
            window_ack_size=cfg.window_ack_size,
        )
        transport.set_write_buffer_limits(high=cfg.write_buffer_limit)
        self._full_read = full_read_size(transport)
        self._log(logging.DEBUG, "connection_opened")
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self._feed(data)
            interval = self.server.config.read_interval
            if (
                self.sink is not None
                and interval
                and not self._paced
                and not self._done
                and len(data) < self._full_read  # (a full read may have left bytes behind)
            ):
                self._paced = True
                self.loop.call_later(interval, self._release_read)
                self._update_reading()

    def eof_received(self) -> bool:
        if self.conn is not None:
            self.conn.receive_data(b"")
            self._process()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self.conn
        if conn is not None and not conn.closed:
            conn.receive_data(b"")
            self._process()
            if not conn.closed:
                conn.close("connection lost")
                self._process()
        self._finish()

    def pause_writing(self) -> None:
        self._write_blocked = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_blocked = False
        self._update_reading()

    # -- the adapter loop ---------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Bytes read from the socket, through the TLS layer on the RTMPS address."""
        conn = self.conn
        assert conn is not None
        tls = self.tls
        if tls is not None:
            try:
                data = tls.receive(data)
            except TlsFailed as exc:
                self._tls_failed(str(exc))
                return
            if tls.closed and not conn.closed:
                conn.receive_data(data)
                data = b""  # the peer's close_notify: its end of the stream
            elif not data:
                self._flush()  # handshake replies
                return
        conn.receive_data(data)
        self._process()

    def _tls_failed(self, reason: str) -> None:
        """A TLS handshake that failed (or a bad record): log why, send the alert, close."""
        self._log(logging.INFO, "connection_closed", cause="tls_error", reason=reason)
        self._end_sink(EndCause.PROTOCOL_ERROR, reason)
        transport = self.transport
        if transport is not None and self.tls is not None and not transport.is_closing():
            alert = self.tls.data_to_send()
            if alert:
                transport.write(alert)
            transport.close()
        self._finish()

    def _process(self) -> None:
        conn = self.conn
        if conn is None or self._done:
            return
        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                self._handle(event)
            self._flush()
        except Exception as exc:
            self._log(
                logging.ERROR,
                "connection_failed",
                exc_info=exc,
            )
            self._end_sink(EndCause.PROTOCOL_ERROR, f"internal error: {type(exc).__name__}")
            self._abort()
            return
        self._update_reading()
        self._arm_timer()

    def _handle(self, event: object) -> None:
        conn = self.conn
        assert conn is not None
        if isinstance(event, ev.MediaReceived):
            if self.sink is not None:
                self.sink.media(event)
        elif isinstance(event, ev.MetadataReceived):
            if self.sink is not None:
                self.sink.metadata(event)
        elif isinstance(event, ev.ConnectRequested):
            self.encoder = event.flash_ver
            self.tc_url = event.tc_url
            if event.app == self.server.config.app:
                conn.accept_connect()
            else:
                self._log(
                    logging.INFO,
                    "connect_rejected",
                    app=event.app,
                    reason="unknown application",
                )
                conn.reject_connect(f"Unknown application {event.app!r}.")
        elif isinstance(event, ev.PublishRequested):
            attempt = PublishAttempt(
                self.id,
                self.remote_addr,
                event.app,
                event.key,
                event.query,
                self.encoder,
                tc_url=self.tc_url,
            )
            self._auth_task = asyncio.ensure_future(self._authorize(attempt))
        elif isinstance(event, ev.Unpublished):
            self._end_sink(EndCause.UNPUBLISHED, f"publisher sent {event.command}")
        elif isinstance(event, ev.ConnectionTerminated):
            self._on_terminated(event)

    async def _authorize(self, attempt: PublishAttempt) -> None:
        try:
            decision = await self.server.authorizer.authorize(attempt)
        except Exception as exc:
            self._log(logging.ERROR, "authorizer_failed", exc_info=exc)
            decision = Decision(False, "NetStream.Publish.Denied", "authorization failed")
        self._auth_task = None
        conn = self.conn
        if conn is None or conn.closed or self._done:
            if decision.allowed and decision.release is not None:
                decision.release()
            return
        if decision.allowed:
            self._not_pending()
            conn.accept_publish()
            self.sink = self.server.handler.started(attempt, self, decision)
            self._log(
                logging.INFO,
                "publish_started",
                app=attempt.app,
                encoder=attempt.encoder,
            )
        else:
            code = decision.code if decision.code in REJECT_CODES else REJECT_CODES[0]
            self._log(
                logging.INFO,
                "publish_rejected",
                app=attempt.app,
                reason=decision.reason,
            )
            conn.reject_publish(code, decision.reason or "Publish rejected.")
        self._process()

    def _on_terminated(self, event: ev.ConnectionTerminated) -> None:
        level = logging.INFO if event.error else logging.DEBUG
        reason = event.reason
        tls = self.tls
        if tls is not None and not tls.handshake_done and event.cause == "handshake_timeout":
            reason = f"TLS handshake not finished ({reason})"
        self._log(
            level,
            "connection_closed",
            cause=event.cause,
            reason=reason,
        )
        self._end_sink(event.cause, event.reason)
        self._flush()
        if tls is not None:
            tls.close()
            self._flush()
        if self.transport is not None:
            self.transport.close()

    def _end_sink(self, cause: EndCause, reason: str) -> None:
        sink, self.sink = self.sink, None
        if sink is not None and self.conn is not None:
            sink.ended(cause, reason, self.conn.bytes_received)

    def _flush(self) -> None:
        conn = self.conn
        transport = self.transport
        if conn is not None and transport is not None:
            data = conn.data_to_send()
            tls = self.tls
            if tls is not None:
                if data:
                    try:
                        tls.send(data)
                    except TlsFailed as exc:
                        self._tls_failed(str(exc))
                        return
                data = tls.data_to_send()
            if data and not transport.is_closing():
                transport.write(data)

    def _update_reading(self) -> None:
        conn = self.conn
        transport = self.transport
        if conn is None or transport is None or transport.is_closing():
            return
        pause = self._write_blocked or self._auth_task is not None or self._paced
        if pause and not self._reading_paused:
            transport.pause_reading()
            self._reading_paused = True
        elif not pause and self._reading_paused:
            transport.resume_reading()
            self._reading_paused = False

    def _release_read(self) -> None:
        """The read interval passed: read again (unless something else keeps it paused)."""
        self._paced = False
        self._update_reading()

    def _log(self, level: int, event: str, /, **fields: object) -> None:
        log_event(logger, level, event, conn=self.id, remote=self.remote_addr, **fields)

    # -- timers and teardown ------------------------------------------------------------

    def _arm_timer(self) -> None:
        """Keep the one timer at the core's next deadline. A later deadline (every read
        moves the idle deadline) is left to the lazy re-arm in :meth:`_on_timer`; only an
        earlier one (the handshake finished, a shorter timeout applies) re-arms now."""
        conn = self.conn
        when = conn.get_timer() if conn is not None and not self._done else None
        if when == self._timer_at or (
            when is not None and self._timer_at is not None and when > self._timer_at
        ):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer) if when is not None else None

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        conn = self.conn
        if conn is None or self._done:
            return
        conn.handle_timer(self.loop.time())
        self._process()  # re-arms the timer at the next deadline

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._end_sink(EndCause.CLOSED_BY_PEER, "connection lost")
        if self._timer is not None:
            self._timer.cancel()
        if self._auth_task is not None and not self._auth_task.done():
            self._auth_task.cancel()
        self._not_pending()
        self.server.connections.discard(self)
        self.server.notify_closed()

    def _not_pending(self) -> None:
        if self._pending_address is not None:
            self.server.admission.release(self._pending_address)
            self._pending_address = None

    @property
    def bytes_received(self) -> int:
        return self.conn.bytes_received if self.conn is not None else 0

    def close(self, reason: str) -> None:
        """End this connection from the server side (shutdown, kick, replaced). A publisher
        first has what already reached this host read, so its session keeps every byte
        sent before the close (a paced connection may have a read interval's worth
        waiting)."""
        if self.conn is not None and not self.conn.closed and not self._done:
            if self.sink is not None:
                self._take_waiting()
            if not self.conn.closed and not self._done:
                self.conn.close(reason)
                self._process()

    def _take_waiting(self) -> None:
        """Read, without waiting, what is in the kernel for this publishing connection
        (until the publish ends or the core's unparsed-bytes cap's worth is taken)."""
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        conn = self.conn
        if sock is None or conn is None:
            return
        try:
            fd = sock.fileno()
        except OSError:
            return
        taken = 0
        while self.sink is not None and not conn.closed and not self._done:
            try:
                data = os.read(fd, _TAKE_SIZE)
            except OSError:  # nothing waiting (EAGAIN), or the socket failed
                return
            if not data:
                return  # EOF: connection_lost tells the rest
            self._feed(data)
            taken += len(data)
            if len(data) < _TAKE_SIZE or taken >= self.server.limits.max_unparsed_bytes:
                return


def listening_addresses(servers: Sequence[asyncio.AbstractServer]) -> list[str]:
    """``host:port`` of every socket the servers listen on."""
    return [
        f"{s.getsockname()[0]}:{s.getsockname()[1]}"
        for server in servers
        for s in getattr(server, "sockets", ())
    ]


class RtmpServer:
    """Accepts publishers on one TCP address and runs a :class:`RtmpProtocol` for each;
    with ``rtmps`` on, on a second address over TLS too (the same connections, caps and
    handler)."""

    def __init__(
        self,
        config: RtmpConfig,
        authorizer: PublishAuthorizer,
        handler: PublishHandler,
        rtmps: RtmpsConfig | None = None,
    ) -> None:
        self.config = config
        self.limits = config.limits()
        self.authorizer = authorizer
        self.handler = handler
        self.rtmps = rtmps if rtmps is not None and rtmps.enabled else None
        #: The certificate new RTMPS connections get (loaded on start, replaced on reload).
        self.certificate: Certificate | None = None
        self.connections: set[RtmpProtocol] = set()
        #: The caps on new connections, and the count of those not publishing yet.
        self.admission = Admission()
        self._servers: list[asyncio.Server] = []
        self._tls_servers: list[asyncio.Server] = []
        self._idle = asyncio.Event()

    async def start(
        self,
        sockets: Sequence[socket.socket] = (),
        *,
        reuse_port: bool = False,
        tls_sockets: Sequence[socket.socket] = (),
    ) -> None:
        """Listen on ``rtmp.listen``, or on already-bound ``sockets`` (socket activation),
        and with RTMPS on, on ``rtmps.listen`` or ``tls_sockets``. With ``reuse_port``,
        other processes may listen on the same addresses too (``SO_REUSEPORT``: the kernel
        spreads new connections over them)."""
        if self.rtmps is not None:
            try:
                self.certificate = load_certificate(self.rtmps.cert_file, self.rtmps.key_file)
            except ValueError as exc:
                raise OSError(f"cannot use the RTMPS certificate: {exc}") from None
        self._servers += await self._listen(
            sockets, self.config.host, self.config.port, reuse_port, tls=False
        )
        log_event(logger, logging.INFO, "rtmp_listening", addresses=" ".join(self.addresses))
        if self.rtmps is not None:
            self._tls_servers += await self._listen(
                tls_sockets, self.rtmps.host, self.rtmps.port, reuse_port, tls=True
            )
            log_event(
                logger,
                logging.INFO,
                "rtmps_listening",
                addresses=" ".join(self.tls_addresses),
                certificate=self.certificate.fingerprint if self.certificate else "-",
            )
        elif tls_sockets:
            raise OSError(
                "an RTMPS socket was passed, but [rtmps] is off: set its listen, cert_file "
                "and key_file"
            )

    async def _listen(
        self,
        sockets: Sequence[socket.socket],
        host: str,
        port: int,
        reuse_port: bool,
        *,
        tls: bool,
    ) -> list[asyncio.Server]:
        loop = asyncio.get_running_loop()
        if sockets:
            return [
                await loop.create_server(lambda: RtmpProtocol(self, tls=tls), sock=sock)
                for sock in sockets
            ]
        return [
            await loop.create_server(
                lambda: RtmpProtocol(self, tls=tls),
                host,
                port,
                reuse_address=True,
                reuse_port=reuse_port or None,
                backlog=1024,
            )
        ]

    def apply(self, config: RtmpConfig, rtmps: RtmpsConfig | None = None) -> None:
        """Take new settings without a restart: limits and timeouts apply to connections
        made from now on (the caps on connections to every new one, counting the open
        ones); the idle timeout also to the open ones. With RTMPS on, the certificate and
        key are read again (``rtmps``' files) for the connections made from now on; the
        open ones keep theirs. One that does not load is logged and the running one kept.
        (``listen`` and turning RTMPS on or off need a restart.)"""
        self.config = config
        self.limits = config.limits()
        for proto in self.connections:
            if proto.conn is not None:
                proto.conn.idle_timeout = config.idle_timeout
        if self.rtmps is not None and rtmps is not None and rtmps.enabled:
            self.reload_certificate(rtmps)

    def reload_certificate(self, rtmps: RtmpsConfig) -> bool:
        """Load ``rtmps``' certificate and key for new connections; False (logged, the
        running one kept) if they do not load."""
        try:
            certificate = load_certificate(rtmps.cert_file, rtmps.key_file)
        except ValueError as exc:
            log_event(
                logger,
                logging.ERROR,
                "rtmps_certificate_rejected",
                error=str(exc),
                detail="the running certificate is kept",
            )
            return False
        self.certificate = certificate
        log_event(
            logger,
            logging.INFO,
            "rtmps_certificate_loaded",
            certificate=certificate.fingerprint,
        )
        return True

    @property
    def addresses(self) -> list[str]:
        return listening_addresses(self._servers)

    @property
    def tls_addresses(self) -> list[str]:
        """Where RTMPS is accepted (empty with RTMPS off)."""
        return listening_addresses(self._tls_servers)

    @property
    def tls_port(self) -> int | None:
        if not self._tls_servers:
            return None
        port: int = self._tls_servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def port(self) -> int:
        port: int = self._servers[0].sockets[0].getsockname()[1]
        return port

    def notify_closed(self) -> None:
        if not self.connections:
            self._idle.set()

    def stop_accepting(self) -> None:
        """Take no new connections (the open ones go on)."""
        for server in (*self._servers, *self._tls_servers):
            server.close()

    async def close(self, reason: str = "server shutting down") -> None:
        """Stop accepting, end every connection, and wait for them to go."""
        self.stop_accepting()
        for proto in list(self.connections):
            proto.close(reason)
        if self.connections:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=5)
            except TimeoutError:
                for proto in list(self.connections):
                    proto._abort()
        for server in (*self._servers, *self._tls_servers):
            await server.wait_closed()
