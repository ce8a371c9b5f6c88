"""A publisher over real TCP, driven by the core's client role (for socket-level tests)."""

from __future__ import annotations

import asyncio
import ssl
from typing import TypeVar

from ingest.rtmp import ClientConnection
from ingest.rtmp.events import NEED_DATA, Event, PublishStarted

E = TypeVar("E", bound=Event)


class SocketPublisher:
    """Pumps a :class:`ClientConnection` over an asyncio stream and keeps every event."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: ClientConnection
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.events: list[Event] = []
        self.eof = False
        #: Bytes written to the socket so far (the server counts what it read of them).
        self.bytes_sent = 0

    @classmethod
    async def open(
        cls,
        port: int,
        app: str = "live",
        name: str = "key",
        host: str = "127.0.0.1",
        *,
        tls: ssl.SSLContext | None = None,
    ) -> SocketPublisher:
        """Connect (over TLS with ``tls``, RTMPS) and queue the handshake."""
        reader, writer = await asyncio.open_connection(host, port, ssl=tls)
        scheme = "rtmps" if tls is not None else "rtmp"
        conn = ClientConnection(app=app, stream_name=name, tc_url=f"{scheme}://{host}:{port}/{app}")
        publisher = cls(reader, writer, conn)
        await publisher.flush()
        return publisher

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)
            self.bytes_sent += len(data)
            try:
                await self.writer.drain()
            except ConnectionError:
                self.eof = True  # The server closed on us; reads will say so too.

    async def wait_for(self, kind: type[E], timeout: float = 10.0) -> E:
        """Read until an event of ``kind`` arrives (or fail on EOF/timeout)."""
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if isinstance(event, kind):
                        self.events.remove(event)
                        return event
                if self.eof:
                    raise AssertionError(f"connection ended before {kind.__name__}: {self.events}")
                await self._read_once()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Read until the server closes the connection."""
        async with asyncio.timeout(timeout):
            while not self.eof:
                await self._read_once()

    async def _read_once(self) -> None:
        try:
            data = await self.reader.read(65536)
        except ConnectionError:
            data = b""
        self.conn.receive_data(data)
        if not data:
            self.eof = True
        while (event := self.conn.next_event()) is not NEED_DATA:
            assert isinstance(event, Event)
            self.events.append(event)
        await self.flush()

    async def publish(self, timeout: float = 10.0) -> None:
        """Wait until the server sent ``NetStream.Publish.Start``."""
        await self.wait_for(PublishStarted, timeout)

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()
