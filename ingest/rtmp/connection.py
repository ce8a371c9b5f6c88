"""What both roles of an RTMP connection share: the sans-IO plumbing.

``receive_data(bytes)`` queues input (``b""`` means EOF), ``next_event()`` parses and
returns one event or :data:`NEED_DATA`, ``data_to_send()`` drains output, and
``get_timer()``/``handle_timer(now)`` drive the handshake deadline and the idle read
timeout from an injected clock. Protocol control messages (chunk size, abort,
acknowledgements, window size, peer bandwidth, pings) are answered here; the roles handle
commands and media.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ingest.rtmp import messages as m
from ingest.rtmp.chunks import ChunkReader, ChunkWriter, Message
from ingest.rtmp.errors import LocalProtocolError, RemoteProtocolError
from ingest.rtmp.events import NEED_DATA, ConnectionTerminated, EndCause, Event, _NeedData
from ingest.rtmp.limits import Limits

Clock = Callable[[], float]


class RtmpConnection:
    """Base of :class:`~ingest.rtmp.server.ServerConnection` and
    :class:`~ingest.rtmp.client.ClientConnection`."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        clock: Clock = time.monotonic,
        chunk_size: int = 4096,
        idle_timeout: float | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.reader = ChunkReader(self.limits)
        self.writer = ChunkWriter()
        #: The outgoing chunk size announced once the connection is set up.
        self.local_chunk_size = chunk_size
        #: Every byte given to :meth:`receive_data` (the wire count, handshake included).
        self.bytes_received = 0
        self.bytes_sent = 0
        self.closed = False
        self.handshake_done = False
        self._started = clock()
        self._last_receive = self._started
        self._eof = False
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._ack_window = 0
        self._acked = 0

    # -- the sans-IO interface ----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Queue bytes received from the peer; empty bytes mean the peer closed (EOF)."""
        if self.closed:
            return
        if not data:
            self._eof = True
            return
        self.bytes_received += len(data)
        self._last_receive = self.clock()
        try:
            self.reader.feed(data)
        except RemoteProtocolError as exc:
            self._terminate(EndCause.PROTOCOL_ERROR, str(exc))
            return
        if self._ack_window and self.bytes_received - self._acked >= self._ack_window:
            self._acked = self.bytes_received
            self._send(m.CSID_CONTROL, m.ACKNOWLEDGEMENT, 0, 0, m.u32(self.bytes_received))

    def next_event(self) -> Event | _NeedData:
        """The next event, or :data:`NEED_DATA` when more input (or a decision) is needed."""
        events = self._events
        while not events:
            if self.closed:
                return NEED_DATA
            if not self._can_parse():
                if not self._eof:
                    return NEED_DATA
                # The peer left while we were deciding: nothing left to decide.
                self._terminate(
                    EndCause.CLOSED_BY_PEER, "peer closed the connection during a request"
                )
                break
            try:
                progressed = self._step()
            except RemoteProtocolError as exc:
                self._terminate(EndCause.PROTOCOL_ERROR, str(exc))
                break
            if not progressed:
                if self._eof:
                    self._terminate(EndCause.CLOSED_BY_PEER, self._eof_reason())
                    break
                return NEED_DATA
        return events.popleft()

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out = []
        self.bytes_sent += len(data)
        return data

    def get_timer(self) -> float | None:
        """The clock time at which :meth:`handle_timer` must be called, if any."""
        if self.closed:
            return None
        if not self.handshake_done:
            return self._started + self.limits.handshake_timeout
        if self.idle_timeout is not None:
            return self._last_receive + self.idle_timeout
        return None

    def handle_timer(self, now: float) -> None:
        """Apply deadlines that have passed at ``now`` (a call before any is due does nothing)."""
        if self.closed:
            return
        if not self.handshake_done:
            if now >= self._started + self.limits.handshake_timeout:
                self._terminate(
                    EndCause.HANDSHAKE_TIMEOUT,
                    f"handshake not finished within {self.limits.handshake_timeout:g}s",
                )
        elif self.idle_timeout is not None and now >= self._last_receive + self.idle_timeout:
            self._terminate(EndCause.IDLE_TIMEOUT, f"no data for {self.idle_timeout:g}s")

    def close(self, reason: str = "closed locally") -> None:
        """End the connection from this side; emits :class:`ConnectionTerminated`."""
        if not self.closed:
            self._terminate(EndCause.CLOSED_LOCALLY, reason)

    @property
    def unparsed_bytes(self) -> int:
        return self.reader.unparsed_bytes

    # -- for the roles ------------------------------------------------------------------

    def _can_parse(self) -> bool:
        """False while waiting for a local decision (parsing resumes after it)."""
        return True

    def _step(self) -> bool:
        """Parse one unit (a handshake packet or a message); False when more bytes are needed."""
        msg = self.reader.next_message()
        if msg is None:
            return False
        type_id = msg.type_id
        if m.SET_CHUNK_SIZE <= type_id <= m.SET_PEER_BANDWIDTH:
            self._handle_control(msg)
        else:
            self._handle_message(msg)
        return True

    def _handle_message(self, msg: Message) -> None:
        raise NotImplementedError

    def _eof_reason(self) -> str:
        if self.reader.partial_bytes or self.reader.unparsed_bytes:
            return "peer closed the connection in the middle of a message"
        return "peer closed the connection"

    def _handle_control(self, msg: Message) -> None:
        payload = msg.payload
        type_id = msg.type_id
        if type_id == m.USER_CONTROL:
            if len(payload) >= 6 and int.from_bytes(payload[:2], "big") == m.PING_REQUEST:
                self._send(
                    m.CSID_CONTROL,
                    m.USER_CONTROL,
                    0,
                    0,
                    m.PING_RESPONSE.to_bytes(2, "big") + payload[2:6],
                )
            return
        if len(payload) < 4:
            raise RemoteProtocolError(
                f"protocol control message of type {type_id} has {len(payload)} bytes, needs 4"
            )
        value = int.from_bytes(payload[:4], "big")
        if type_id == m.SET_CHUNK_SIZE:
            self.reader.set_chunk_size(value)
        elif type_id == m.ABORT:
            self.reader.abort(value)
        elif type_id == m.WINDOW_ACK_SIZE:
            self._ack_window = value
            self._acked = self.bytes_received
        # Acknowledgement and Set Peer Bandwidth need no answer from a publisher or ingest.

    def _send(
        self, csid: int, type_id: int, stream_id: int, timestamp: int, payload: bytes
    ) -> None:
        if self.closed:
            raise LocalProtocolError("the connection is closed")
        self._out.append(self.writer.write(csid, type_id, stream_id, timestamp, payload))

    def _send_command(self, csid: int, stream_id: int, name: str, txn: float, *args: Any) -> None:
        self._send(csid, m.COMMAND_AMF0, stream_id, 0, m.command(name, txn, *args))

    def _set_chunk_size(self, size: int) -> None:
        """Announce and apply our outgoing chunk size."""
        self._send(m.CSID_CONTROL, m.SET_CHUNK_SIZE, 0, 0, m.u32(size))
        self.writer.chunk_size = size

    def _terminate(self, cause: EndCause, reason: str) -> None:
        self.closed = True
        self._events.append(ConnectionTerminated(cause, reason))
        # Drop parse state so a dead connection holds no memory.
        self.reader = ChunkReader(self.limits)
