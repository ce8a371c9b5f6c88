"""What is forwarded, and what one target is owed: the source's messages as packets shared
by every target, and each target's bounded backlog (sans-IO: no sockets, no clock).

A :class:`Packet` is one message of the source, classified once (a header to resend to a
target that joins late, a point a target may start at, ...) and chunked once per message
stream id, so that any number of targets queue the same bytes object: feeding costs a
reference per target, never a copy.

A :class:`Backlog` decides, message by message, what one target gets:

- on its first connection it gets everything from the start of the session, queued
  while it connects;
- once a connection is lost it gets nothing (counted as skipped) until it is live again,
  then the stream's current headers (metadata, sequence headers) and everything from the
  next start point (a video keyframe; any audio frame in a stream without video);
- when more than ``max_buffer`` payload bytes wait for it (a slow or stalled target),
  media is skipped up to the next start point that fits (sequence headers and metadata
  are never skipped: a changed configuration still reaches it, in order).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from ingest.flv import FlvError, parse_audio, parse_video
from ingest.rtmp import amf0
from ingest.rtmp import messages as m
from ingest.rtmp.chunks import ChunkWriter

#: The chunk size every target gets (OBS's and FFmpeg's: every server takes it).
CHUNK_SIZE = 4096

_writer = ChunkWriter()
_writer.chunk_size = CHUNK_SIZE
_CSID = {m.AUDIO: m.CSID_AUDIO, m.VIDEO: m.CSID_VIDEO, m.DATA_AMF0: m.CSID_DATA}


class Packet:
    """One message of the source as targets get it."""

    __slots__ = (
        "_encoded",
        "header",
        "media_size",
        "payload",
        "start",
        "timestamp",
        "track",
        "type_id",
    )

    def __init__(
        self,
        type_id: int,
        timestamp: int,
        payload: bytes,
        *,
        header: bool,
        start: bool,
        track: tuple[object, ...] = (),
    ) -> None:
        self.type_id = type_id
        self.timestamp = timestamp
        self.payload = payload
        #: Metadata or a sequence header: resent to a target that (re)joins, never skipped.
        self.header = header
        #: A point a target may start at (a video keyframe; audio in a stream without video).
        self.start = start
        #: Audio/video payload bytes (what the session counts as media); 0 for metadata.
        self.media_size = len(payload) if type_id in (m.AUDIO, m.VIDEO) else 0
        #: Which header this is (a newer one with the same ``track`` replaces it).
        self.track = (type_id, *track)
        self._encoded: tuple[int, bytes] | None = None

    @property
    def video(self) -> bool:
        return self.type_id == m.VIDEO

    def encoded(self, stream_id: int) -> bytes:
        """The message's chunks for a target publishing on ``stream_id`` (made once and
        kept for the usual single stream id)."""
        cached = self._encoded
        if cached is not None and cached[0] == stream_id:
            return cached[1]
        data = _writer.write(
            _CSID[self.type_id], self.type_id, stream_id, self.timestamp, self.payload
        )
        if cached is None:
            self._encoded = (stream_id, data)
        return data


def metadata_packet(timestamp: int, name: str, values: dict[str, object]) -> Packet:
    """``@setDataFrame(name, values)``, as encoders send their metadata."""
    payload = amf0.encode("@setDataFrame", name, amf0.EcmaArray(values))
    return Packet(m.DATA_AMF0, timestamp, payload, header=True, start=False)


def media_packet(type_id: int, timestamp: int, payload: bytes, has_video: bool) -> Packet:
    """An audio or video message, classified with the FLV parsers (so a keyframe and a
    sequence header are what the rest of the server calls them). ``has_video``: whether
    the source has sent video so far (without it, audio frames are start points)."""
    header = start = False
    track: list[object] = []
    try:
        if type_id == m.VIDEO:
            for video in parse_video(payload, timestamp):
                if video.kind == "config":
                    header = True
                    track += (video.track_id, video.fourcc)
                start = start or video.is_keyframe
        else:
            for audio in parse_audio(payload, timestamp):
                if audio.kind == "config":
                    header = True
                    track += (audio.track_id, audio.fourcc)
                start = True
            start = start and not has_video
    except FlvError:
        pass  # forwarded as it is, like any other frame
    return Packet(
        type_id, timestamp, payload, header=header, start=start and not header, track=tuple(track)
    )


class Backlog:
    """One target's queue of packets and the rules above; counts what it skips."""

    __slots__ = (
        "_resync",
        "_waiting",
        "accepting",
        "max_buffer",
        "need_video_key",
        "queue",
        "queued_bytes",
        "skipped_bytes",
    )

    def __init__(self, max_buffer: int) -> None:
        self.max_buffer = max_buffer
        self.queue: deque[Packet] = deque()
        #: Payload bytes of the queued packets.
        self.queued_bytes = 0
        #: Media payload bytes not forwarded.
        self.skipped_bytes = 0
        #: Whether packets are queued at all (not while the target is disconnected).
        self.accepting = True
        #: Skipping up to the next start point; ``_resync``: with the headers before it.
        self._waiting = False
        self._resync = False
        #: Started on audio before the source had video: its video waits for a keyframe.
        self.need_video_key = False

    def offer(self, packet: Packet, headers: Callable[[], Iterable[Packet]]) -> bool:
        """Queue ``packet`` or skip it; ``headers`` gives the stream's current headers (for
        a target that starts over). True when something was queued."""
        if not self.accepting:
            if not packet.header:  # (a target that starts over gets the current headers)
                self.skipped_bytes += packet.media_size
            return False
        size = len(packet.payload)
        if self._waiting:
            if packet.header:
                if self._resync:
                    return False  # sent with the others before the start point
                self._push(packet)
                return True
            if packet.start and self.queued_bytes + size <= self.max_buffer:
                if self._resync:
                    for header in headers():
                        self._push(header)
                self._waiting = self._resync = False
                self.need_video_key = not packet.video
                self._push(packet)
                return True
            self.skipped_bytes += packet.media_size
            return False
        if packet.video and self.need_video_key and not packet.header:
            if not packet.start:
                self.skipped_bytes += packet.media_size
                return False
            self.need_video_key = False
        if not packet.header and self.queued_bytes + size > self.max_buffer:
            self.skipped_bytes += packet.media_size
            self._waiting = True  # the headers it had still hold: no resync
            return False
        self._push(packet)
        return True

    def _push(self, packet: Packet) -> None:
        self.queue.append(packet)
        self.queued_bytes += len(packet.payload)

    def take(self) -> Packet | None:
        """The next packet to send, or None."""
        if not self.queue:
            return None
        packet = self.queue.popleft()
        self.queued_bytes -= len(packet.payload)
        return packet

    def lost(self) -> None:
        """The connection is gone: drop what waits (skipped), take nothing until
        :meth:`rejoin`."""
        self.skipped_bytes += sum(p.media_size for p in self.queue if not p.header)
        self.queue.clear()
        self.queued_bytes = 0
        self.accepting = False

    def rejoin(self) -> None:
        """Live again: start over at the next start point, with the headers."""
        self.accepting = True
        self._waiting = self._resync = True
        self.need_video_key = False
