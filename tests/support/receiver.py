"""A real HTTP receiver for webhooks and the publish-auth callback: a Starlette app served
by uvicorn in the test's event loop, on a port of 127.0.0.1 it keeps across restarts
(stop it to have connections refused, start it again on the same port).

What it answers is up to the test: ``respond`` takes each request and returns the status
and JSON body (it may sleep first: a slow receiver)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: time.monotonic() when the request arrived.
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, Any]
Responder = Callable[[Received], Awaitable[Reply]]


async def ok(_: Received) -> Reply:
    return 204, None


@dataclass
class Receiver:
    respond: Responder = ok
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: Request) -> Response:
        received = Received(
            request.url.path, dict(request.headers), await request.body(), time.monotonic()
        )
        self.requests.append(received)
        self.arrived.set()
        status, body = await self.respond(received)
        if body is None:
            return Response(status_code=status)
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    async def start(self) -> Receiver:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            with contextlib.suppress(Exception):
                await self._task
        self._server = self._task = None

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until ``count`` requests arrived (in all); return them."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests


class DripServer:
    """An HTTP peer that takes a request, then sends its answer's status line and headers
    a byte every ``interval`` seconds, never finishing: no single read waits long, yet the
    answer never comes."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/drip"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(self.interval)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def start(self) -> DripServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
