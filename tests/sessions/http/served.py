"""The API served for real: uvicorn on a loopback port, through the server's own wiring
(:func:`sessions.http.server.http_server`: the request guard, the header deadline and the
connection cap), with a real store and the fake live-session manager."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import Config, HttpConfig
from ingest.listener import listening_addresses
from sessions.http import create_app
from sessions.http.server import SHUTDOWN_GRACE, HttpServer, http_server
from sessions.playback import Playback
from sessions.streams import Streams
from sessions.writes import StoreWrites
from storage import Store
from tests.sessions.http.conftest import INGEST_URL, T0, TOKEN, FakeLive, TickingClock


@dataclass
class Served:
    url: str
    host: str
    port: int
    server: HttpServer
    store: Store
    streams: Streams
    live: FakeLive


@contextlib.asynccontextmanager
async def serve_api(
    tmp_path: Path, *, shutdown_grace: int = SHUTDOWN_GRACE, **http: object
) -> AsyncIterator[Served]:
    """The API on 127.0.0.1 in this loop; *http* are ``[http]`` settings."""
    store = await Store.open(tmp_path / "ledger.db")
    try:
        streams = Streams(store, clock=TickingClock(T0))
        live = FakeLive()
        settings: dict[str, Any] = {"listen": "127.0.0.1:0", **http}
        config = HttpConfig(public_rtmp_url=INGEST_URL, **settings)
        app = create_app(
            store=store,
            streams=streams,
            live=live,
            config=Config(http=config),
            admin_token=TOKEN,
            is_ready=lambda: True,
            playback=Playback(store, live, tmp_path / "media", StoreWrites(store)),
            playback_base="http://viewer.test",
        )
        server = http_server(app, config, shutdown_grace=shutdown_grace)
        task = asyncio.ensure_future(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        host, port = listening_addresses(server.servers)[0].rsplit(":", 1)
        try:
            yield Served(f"http://{host}:{port}", host, int(port), server, store, streams, live)
        finally:
            server.should_exit = True
            await task
    finally:
        await store.close()


@contextlib.contextmanager
def serve_api_in_thread(tmp_path: Path) -> Iterator[str]:
    """The API served from a thread of its own (for synchronous clients); yields its URL.
    The store holds a stream named ``default``."""
    started = threading.Event()
    stop = threading.Event()
    url: list[str] = []
    failure: list[BaseException] = []

    async def run() -> None:
        async with serve_api(tmp_path) as served:
            await served.streams.create("default")
            url.append(served.url)
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=main, name="served-api", daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    try:
        yield url[0]
    finally:
        stop.set()
        thread.join(30)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def read_response(reader: asyncio.StreamReader, timeout: float = 30.0) -> RawResponse:
    """One HTTP/1.1 answer with a Content-Length, read off a raw connection. The timeout
    only guards against a server that never answers."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines if line)
    }
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return RawResponse(int(status_line.split()[1]), headers, body)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 30.0) -> bool:
    """Whether the server closes the connection (EOF or reset) before *timeout*."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        return False
    return True


@contextlib.asynccontextmanager
async def connection(
    served: Served,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A raw TCP connection to the served API, closed however the test ends (so that the
    server is not left waiting on a request that failed the test)."""
    reader, writer = await asyncio.open_connection(served.host, served.port)
    try:
        yield reader, writer
    finally:
        writer.close()
