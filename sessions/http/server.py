"""The HTTP server: uvicorn in the server's own event loop, with the two limits it lacks.

uvicorn (its h11 protocol) waits for a request's headers for ever and accepts every
connection, so a client that trickles header lines, or many of them, holds descriptors
until the process runs out (and then the RTMP side cannot accept either). Here each
connection is an :class:`H11Protocol` that also

- cuts a request whose headers have not all arrived ``[http] header_timeout`` seconds after
  it began (its first byte; on a new connection, the connect): the whole header, not a
  line, is timed. It is answered 408 and closed. Between requests, uvicorn's keep-alive
  timeout closes an idle connection as before;
- refuses a connection beyond ``[http] max_connections`` open at once (503, closed).

Both are logged, at most once per :data:`LOG_INTERVAL` seconds each, with how many there
were since the last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Generator
from dataclasses import dataclass
from typing import ClassVar, Final

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from ingest.config import HttpConfig, parse_listen
from ingest.logs import log_event
from sessions.http.errors import error_body

logger = logging.getLogger("sessions.http")

#: Seconds between two log lines about the same limit.
LOG_INTERVAL: Final = 10.0
#: Seconds a stopping server waits for requests in flight (a client sending its body
#: slowly) before it cancels them.
SHUTDOWN_GRACE: Final = 5


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What a connection may take: ``[http] header_timeout`` and ``max_connections``."""

    header_timeout: float
    max_connections: int

    @classmethod
    def from_config(cls, config: HttpConfig) -> HttpLimits:
        return cls(config.header_timeout, config.max_connections)


class LimitLog:
    """Logs that a limit was hit: the first time at once, then at most once per
    :data:`LOG_INTERVAL`, with the number of times since the previous line."""

    def __init__(self, event: str, **fields: object) -> None:
        self.event = event
        self.fields = fields
        self._count = 0
        self._logged_at: float | None = None

    def hit(self, now: float) -> None:
        self._count += 1
        if self._logged_at is not None and now - self._logged_at < LOG_INTERVAL:
            return
        log_event(logger, logging.WARNING, self.event, count=self._count, **self.fields)
        self._count = 0
        self._logged_at = now


def _raw_response(status: int, reason: str, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 error answer that closes the connection, written directly to
    the transport (no request was parsed, so h11 cannot send one)."""
    body = json.dumps(error_body(code, message)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection cap; a subclass per
    server carries its limits and logs (:func:`protocol_class`)."""

    limits: ClassVar[HttpLimits]
    timeouts: ClassVar[LimitLog]
    refusals: ClassVar[LimitLog]

    _refused = False
    _first_request = True
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.refusals.hit(self.loop.time())
            message = f"more than {self.limits.max_connections} HTTP connections are open"
            transport.write(
                _raw_response(503, "Service Unavailable", "too_many_connections", message)
            )
            transport.close()
            return
        super().connection_made(transport)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_headers()

    def _watch_headers(self) -> None:
        """Run the deadline while a request's headers are awaited: from the connect until
        the first request is parsed, and from the first byte of each later one."""
        if self.transport.is_closing():
            self._disarm()
            return
        if self.conn.their_state is not h11.IDLE:
            self._first_request = False
            self._disarm()
        elif self._first_request or self.conn.trailing_data[0]:
            if self._deadline is None:
                timeout = self.limits.header_timeout
                self._deadline = self.loop.call_later(timeout, self._headers_too_late)
        else:
            self._disarm()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.timeouts.hit(self.loop.time())
        message = f"the request headers did not arrive within {self.limits.header_timeout:g} s"
        self.transport.write(_raw_response(408, "Request Timeout", "request_timeout", message))
        self.transport.close()


def protocol_class(limits: HttpLimits) -> type[LimitedH11Protocol]:
    """The protocol for one server: its limits, and logs shared by its connections."""

    class Protocol(LimitedH11Protocol):
        pass

    Protocol.limits = limits
    Protocol.timeouts = LimitLog("http_header_timeout", timeout=limits.header_timeout)
    Protocol.refusals = LimitLog("http_connection_refused", max_connections=limits.max_connections)
    return Protocol


class HttpServer(uvicorn.Server):
    """uvicorn in the caller's loop: the signals are the caller's, not its, and a failure
    to start (an address in use) is an :class:`OSError` for the caller, not the
    ``SystemExit`` uvicorn raises, which would tear the caller's loop down mid-task."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit:
            host, port = self.config.host, self.config.port
            raise OSError(f"the HTTP API could not listen on {host}:{port}") from None


def http_server(
    app: ASGIApp, config: HttpConfig, *, shutdown_grace: int = SHUTDOWN_GRACE
) -> HttpServer:
    """The server for *app* on ``config.listen`` with ``config``'s limits (no access log,
    no lifespan: the caller starts and stops everything around it). Stopping it waits at
    most *shutdown_grace* seconds for requests in flight."""
    host, port = parse_listen(config.listen)
    return HttpServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            http=protocol_class(HttpLimits.from_config(config)),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=shutdown_grace,
        )
    )
