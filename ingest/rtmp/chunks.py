"""RTMP chunk stream: reassembling messages from chunks, and splitting messages into chunks.

The reader keeps received bytes as a list of pending pieces plus one parse buffer; a
message is only buffered as its bytes arrive (a declared length never allocates), every
header is parsed with rollback (a half-received header leaves the position untouched), and
the fast path takes all contiguous continuation chunks of a message with one strided slice.
"""

from __future__ import annotations

from typing import NamedTuple

from ingest.rtmp.errors import RemoteProtocolError
from ingest.rtmp.limits import Limits

#: A 24-bit timestamp field of this value means a 4-byte extended timestamp follows.
EXTENDED = 0xFFFFFF
#: Chunk sizes above this behave as this (the message length field is 24 bits).
MAX_CHUNK_SIZE = 0xFFFFFF
DEFAULT_CHUNK_SIZE = 128
_MASK32 = 0xFFFFFFFF


class Message(NamedTuple):
    """One reassembled message of the chunk stream (a named tuple: made for every message,
    at a third of a frozen dataclass's cost)."""

    csid: int
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes


class _ChunkStream:
    """What one chunk stream id remembers between chunks (the header compression state)."""

    __slots__ = (
        "delta",
        "extended",
        "length",
        "parts",
        "received",
        "stream_id",
        "timestamp",
        "type_id",
    )

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        #: The extended timestamp value of the last header, or -1 when it had none.
        self.extended = -1
        #: Payload pieces of the message being assembled, and their total size.
        self.parts: list[bytes] = []
        self.received = 0


class ChunkReader:
    """Reassembles messages from the chunk stream bytes given to :meth:`feed`.

    Raises :class:`RemoteProtocolError` for anything the peer got wrong; after that the
    reader must not be used again.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.chunk_size = DEFAULT_CHUNK_SIZE
        #: Cap on the length of one message; the connection raises it once publishing.
        self.max_message_size = limits.max_message_size_before_publish
        self._streams: dict[int, _ChunkStream] = {}
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._data = b""
        self._pos = 0
        #: Bytes held by half-assembled messages (all chunk streams together).
        self._partial_bytes = 0
        #: Unparsed bytes needed before the chunk the parser stopped at can be complete;
        #: until then nothing is merged or parsed, so trickled bytes cost O(1) each.
        self._wanted = 0

    # -- input --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Queue received bytes; nothing is parsed or copied until :meth:`next_message`."""
        if data:
            self._pending.append(data)
            self._pending_size += len(data)
            unparsed = len(self._data) - self._pos + self._pending_size
            if unparsed > self.limits.max_unparsed_bytes:
                raise RemoteProtocolError(
                    f"{unparsed} unparsed bytes exceed the cap of {self.limits.max_unparsed_bytes}"
                )

    @property
    def unparsed_bytes(self) -> int:
        """Bytes received and not yet consumed by the parser."""
        return len(self._data) - self._pos + self._pending_size

    @property
    def partial_bytes(self) -> int:
        return self._partial_bytes

    def take_raw(self, size: int) -> bytes | None:
        """Consume ``size`` raw bytes (the handshake), or return None if not all there yet."""
        self._merge()
        if len(self._data) - self._pos < size:
            return None
        start = self._pos
        self._pos = start + size
        return self._data[start : self._pos]

    def peek_byte(self) -> int | None:
        """The next unconsumed byte, if any (used to check C0/S0 before the rest arrives)."""
        if self._pos < len(self._data):
            return self._data[self._pos]
        if self._pending:
            return self._pending[0][0]
        return None

    def set_chunk_size(self, size: int) -> None:
        """Apply a peer's Set Chunk Size (the 31-bit value of the message)."""
        if size & 0x80000000:
            raise RemoteProtocolError(f"Set Chunk Size with the high bit set: {size:#x}")
        if size < self.limits.min_chunk_size:
            raise RemoteProtocolError(
                f"Set Chunk Size {size} is below the minimum of {self.limits.min_chunk_size}"
            )
        self.chunk_size = min(size, MAX_CHUNK_SIZE)

    def abort(self, csid: int) -> None:
        """Drop the half-assembled message on ``csid`` (Abort message)."""
        stream = self._streams.get(csid)
        if stream is not None and stream.received:
            self._partial_bytes -= stream.received
            stream.parts = []
            stream.received = 0

    def _merge(self) -> None:
        if self._pending:
            rest = self._data[self._pos :] if self._pos < len(self._data) else b""
            if rest:
                self._pending.insert(0, rest)
            self._data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pos = 0
            self._pending = []
            self._pending_size = 0

    # -- parsing ------------------------------------------------------------------------

    def next_message(self) -> Message | None:
        """The next complete message, or None when more bytes are needed.

        A chunk is consumed only once its header and payload are both here, so a
        half-received chunk leaves the position and the chunk stream's state untouched.
        """
        unparsed = len(self._data) - self._pos + self._pending_size
        if not unparsed or unparsed < self._wanted:
            return None
        self._wanted = 0
        self._merge()
        data = self._data
        end = len(data)
        pos = self._pos
        streams = self._streams
        while pos < end:
            b0 = data[pos]
            fmt = b0 >> 6
            csid = b0 & 0x3F
            hpos = pos + 1
            if csid == 0:
                if hpos >= end:
                    break
                csid = 64 + data[hpos]
                hpos += 1
            elif csid == 1:
                if hpos + 1 >= end:
                    break
                csid = 64 + data[hpos] + (data[hpos + 1] << 8)
                hpos += 2
            stream = streams.get(csid)
            if stream is None:
                if fmt != 0:
                    raise RemoteProtocolError(
                        f"chunk of fmt {fmt} on chunk stream {csid}, which has no prior header"
                    )
                if len(streams) >= self.limits.max_chunk_streams:
                    raise RemoteProtocolError(
                        f"more than {self.limits.max_chunk_streams} chunk streams in use"
                    )
                stream = _ChunkStream()
                streams[csid] = stream
            received = stream.received
            extended = stream.extended
            if fmt == 3:
                timestamp = stream.timestamp
                delta = stream.delta
                length = stream.length
                type_id = stream.type_id
                stream_id = stream.stream_id
                if extended >= 0:
                    if hpos + 4 > end:
                        break
                    value = int.from_bytes(data[hpos : hpos + 4], "big")
                    if received:
                        # Peek-and-compare: some writers repeat the extended timestamp on
                        # continuation chunks, others omit it.
                        if value == extended:
                            hpos += 4
                    else:
                        hpos += 4
                        extended = delta = value
                if not received:
                    timestamp = (timestamp + delta) & _MASK32
            else:
                if received:
                    raise RemoteProtocolError(
                        f"chunk of fmt {fmt} on chunk stream {csid} interrupts a "
                        f"half-received message"
                    )
                size = 11 if fmt == 0 else 7 if fmt == 1 else 3
                if hpos + size > end:
                    break
                field = (data[hpos] << 16) | (data[hpos + 1] << 8) | data[hpos + 2]
                if fmt == 2:
                    length = stream.length
                    type_id = stream.type_id
                else:
                    length = (data[hpos + 3] << 16) | (data[hpos + 4] << 8) | data[hpos + 5]
                    type_id = data[hpos + 6]
                stream_id = (
                    int.from_bytes(data[hpos + 7 : hpos + 11], "little")
                    if fmt == 0
                    else stream.stream_id
                )
                hpos += size
                if field == EXTENDED:
                    if hpos + 4 > end:
                        break
                    field = extended = int.from_bytes(data[hpos : hpos + 4], "big")
                    hpos += 4
                else:
                    extended = -1
                # FFmpeg/librtmp rule: a fmt 3 right after fmt 0 reuses its value as delta.
                delta = field
                timestamp = field if fmt == 0 else (stream.timestamp + field) & _MASK32
            if not received and length > self.max_message_size:
                raise RemoteProtocolError(
                    f"message of {length} bytes on chunk stream {csid} exceeds the cap of "
                    f"{self.max_message_size}"
                )
            need = length - received
            take = need if need < self.chunk_size else self.chunk_size
            if hpos + take > end:
                self._wanted = hpos + take - pos
                break
            # The whole chunk is here: commit its header.
            stream.timestamp = timestamp
            stream.delta = delta
            stream.length = length
            stream.type_id = type_id
            stream.stream_id = stream_id
            stream.extended = extended
            pos = hpos + take
            if take == need and not received:
                # The whole message in one chunk: the common case at large chunk sizes.
                self._pos = pos
                return Message(csid, type_id, stream_id, timestamp, data[hpos:pos])
            self._reserve(take)
            stream.parts.append(data[hpos:pos])
            stream.received = received + take
            if take < need and csid < 64 and extended < 0:
                pos = self._take_contiguous(stream, pos, 0xC0 | csid)
            if stream.received == length:
                self._pos = pos
                return self._complete(csid, stream)
        self._pos = pos
        return None

    def _take_contiguous(self, stream: _ChunkStream, pos: int, header: int) -> int:
        """Take the continuation chunks of ``stream`` that follow at ``pos`` uninterleaved,
        checking all their one-byte headers with a single strided slice."""
        data = self._data
        size = self.chunk_size
        stride = size + 1
        remaining = stream.length - stream.received
        count = (remaining + size - 1) // size
        if pos + remaining + count > len(data):
            # Not all here: take only the whole chunks that are.
            count = (len(data) - pos) // stride
            remaining = count * size
        if count == 0:
            return pos
        stop = pos + remaining + count
        if data[pos:stop:stride] != bytes((header,)) * count:
            return pos
        self._reserve(remaining)
        last = pos + (count - 1) * stride
        parts = stream.parts
        parts.extend([data[p + 1 : p + stride] for p in range(pos, last, stride)])
        parts.append(data[last + 1 : stop])
        stream.received += remaining
        return stop

    def _reserve(self, size: int) -> None:
        self._partial_bytes += size
        if self._partial_bytes > self.limits.max_partial_bytes:
            raise RemoteProtocolError(
                f"{self._partial_bytes} bytes of half-assembled messages exceed the cap of "
                f"{self.limits.max_partial_bytes}"
            )

    def _complete(self, csid: int, stream: _ChunkStream) -> Message:
        payload = b"".join(stream.parts)
        self._partial_bytes -= stream.received
        stream.parts = []
        stream.received = 0
        return Message(csid, stream.type_id, stream.stream_id, stream.timestamp, payload)


class ChunkWriter:
    """Splits outgoing messages into chunks (fmt 0 first chunk, fmt 3 continuations)."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def write(
        self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes
    ) -> bytes:
        """The chunks of one message, as bytes to send."""
        if not 2 <= csid <= 65599:
            raise ValueError(f"chunk stream id {csid} out of range")
        timestamp &= _MASK32
        length = len(payload)
        basic0 = _basic_header(0, csid)
        extended = timestamp >= EXTENDED
        header = bytearray(basic0)
        header += (EXTENDED if extended else timestamp).to_bytes(3, "big")
        header += length.to_bytes(3, "big")
        header.append(type_id)
        header += stream_id.to_bytes(4, "little")
        ext = timestamp.to_bytes(4, "big") if extended else b""
        header += ext
        size = self.chunk_size
        if length <= size:
            return bytes(header) + payload
        cont = _basic_header(3, csid) + ext
        pieces = [bytes(header), payload[:size]]
        for start in range(size, length, size):
            pieces.append(cont)
            pieces.append(payload[start : start + size])
        return b"".join(pieces)


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes(((fmt << 6) | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    rest = csid - 64
    return bytes(((fmt << 6) | 1, rest & 0xFF, rest >> 8))
