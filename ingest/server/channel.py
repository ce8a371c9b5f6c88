"""A message channel between the main process and a worker process.

The messages are those of :mod:`sessions.process_messages`, sent as JSON objects in frames
(a 4-byte big-endian length, then UTF-8 JSON) over a Unix stream socket. Either side may
send notices (``{"op": ..., ...}``, no answer) and requests (with an ``id``); a request's
answer is ``{"re": id, "result": ...}`` or ``{"re": id, "error": "..."}``. Frames are read
and handled in the order they were sent, which is what lets a worker's reports reach the
owner before the request that follows them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from ingest.logs import log_event
from sessions.process_messages import (
    ChannelClosed,
    Message,
    RemoteError,
    Wire,
    decode,
    encode,
)

logger = logging.getLogger("ingest.channel")

#: The largest frame either side accepts (a worker's whole live view fits easily).
MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")

__all__ = [
    "MAX_FRAME",
    "Channel",
    "ChannelClosed",
    "FrameDecoder",
    "NoticeHandler",
    "RemoteError",
    "RequestHandler",
    "encode_frame",
]

#: Answers a request; what it returns is the request's result.
RequestHandler = Callable[[Message], Awaitable[Any]]
NoticeHandler = Callable[[Message], None]


def encode_frame(message: Wire) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise ValueError(f"message of {len(body)} bytes is over the {MAX_FRAME}-byte limit")
    return _LENGTH.pack(len(body)) + body


class FrameDecoder:
    """Turns received bytes into messages, whatever the read sizes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Wire]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes is over the {MAX_FRAME}-byte limit")
            end = _LENGTH.size + size
            if len(self._buffer) < end:
                break
            message = json.loads(bytes(self._buffer[_LENGTH.size : end]))
            del self._buffer[:end]
            if not isinstance(message, dict):
                raise ValueError("a frame must hold a JSON object")
            messages.append(message)
        return messages


class Channel:
    """One end of the channel: send notices and requests, dispatch what arrives."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        on_request: RequestHandler,
        on_notice: NoticeHandler,
        name: str = "channel",
    ) -> None:
        self.sock = sock
        self.name = name
        self._on_request = on_request
        self._on_notice = on_notice
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=self.sock)
        self._reader_task = asyncio.ensure_future(self._read(reader))

    def notify(self, message: Message) -> None:
        """Send a notice; silently dropped once the channel is closed."""
        self._send(encode(message))

    async def request(self, message: Message) -> Any:
        """Send a request and wait for its answer."""
        if self.closed.is_set():
            raise ChannelClosed(f"{self.name} is closed")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            self._send({**encode(message), "id": request_id})
            return await future
        finally:
            self._waiting.pop(request_id, None)

    def _send(self, message: Wire) -> None:
        writer = self._writer
        if writer is None or writer.is_closing() or self.closed.is_set():
            return
        writer.write(encode_frame(message))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        try:
            while True:
                data = await reader.read(256 * 1024)
                if not data:
                    break
                for message in decoder.feed(data):
                    self._dispatch(message)
        except (ConnectionError, ValueError) as exc:
            log_event(logger, logging.ERROR, "channel_failed", channel=self.name, error=str(exc))
        finally:
            self._close()

    def _dispatch(self, data: Wire) -> None:
        if "re" in data:
            future = self._waiting.get(data["re"])
            if future is not None and not future.done():
                if "error" in data:
                    future.set_exception(RemoteError(str(data["error"])))
                else:
                    future.set_result(data.get("result"))
        elif "id" in data:
            task = asyncio.ensure_future(self._answer(data))
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)
        else:
            try:
                self._on_notice(decode(data))
            except Exception as exc:
                self._log_failure("channel_notice_failed", data, exc)

    async def _answer(self, data: Wire) -> None:
        try:
            result = await self._on_request(decode(data))
        except Exception as exc:
            self._log_failure("channel_request_failed", data, exc)
            self._send({"re": data["id"], "error": f"{type(exc).__name__}: {exc}"})
        else:
            self._send({"re": data["id"], "result": result})

    def _log_failure(self, event: str, data: Wire, exc: Exception) -> None:
        log_event(logger, logging.ERROR, event, channel=self.name, op=data.get("op"), exc_info=exc)

    def _close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"{self.name} closed"))
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        """Close this end and wait for the reader to stop."""
        self._close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        for task in list(self._handling):
            task.cancel()
        await asyncio.gather(*self._handling, return_exceptions=True)
