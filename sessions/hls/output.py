"""One media segment being written: a short-lived PyAV output container per segment.

MPEG-TS: one ``mpegts`` container per segment; packets keep their absolute timestamps,
so consecutive segments continue each other's timeline.

fMP4/CMAF: one ``mp4`` container per segment with
``movflags=empty_moov+default_base_moof+omit_tfhd_offset+frag_custom+frag_discont``.
``empty_moov`` puts an ``ftyp``+``moov`` with no samples first (the init segment, the
same bytes every time for the same templates), ``frag_custom`` keeps every packet in a
single ``moof``+``mdat`` written on close (the media segment), and ``frag_discont`` with
``avoid_negative_ts=disabled`` makes the ``tfdt`` base media decode time the packets'
absolute DTS instead of restarting at 0 in each container. The caller splits the bytes
at the first ``moof`` box.

An MPEG-TS segment is written by FFmpeg straight into a ``.tmp`` file beside its final
name, which it gets by rename once complete (:meth:`SegmentWriter.commit`): nothing of it
is held in memory, and no byte crosses into Python. An fMP4 container writes to memory,
because its bytes are split into the init and media segments; those files are written
whole by :func:`write_atomic` (a ``.tmp`` name, then :func:`os.replace`). Either way an
HTTP server never serves half a segment.
"""

from __future__ import annotations

import contextlib
import io
import os
from fractions import Fraction
from pathlib import Path

import av
import av.container

from .templates import SegmentFormat, Templates

__all__ = ["SegmentWriter", "split_fmp4", "write_atomic"]

MS = Fraction(1, 1000)
_MP4_OPTIONS = {
    "movflags": "empty_moov+default_base_moof+omit_tfhd_offset+frag_custom+frag_discont",
    "avoid_negative_ts": "disabled",
}


class SegmentWriter:
    """Muxes packets (millisecond timestamps) into one segment: MPEG-TS into the file
    ``temporary``, fMP4 into memory."""

    __slots__ = ("_audio", "_buffer", "_container", "_temporary", "_video", "packets")

    def __init__(
        self, segment_format: SegmentFormat, templates: Templates, temporary: Path
    ) -> None:
        self._buffer: io.BytesIO | None = None
        self._temporary: Path | None = None
        if segment_format == "mpegts":
            container = av.open(str(temporary), "w", format="mpegts")
            self._temporary = temporary
        else:
            self._buffer = io.BytesIO()
            container = av.open(self._buffer, "w", format="mp4", options=_MP4_OPTIONS)
        assert isinstance(container, av.container.OutputContainer)
        self._container = container
        self._video: av.VideoStream | None = None
        self._audio: av.AudioStream | None = None
        if templates.video is not None:
            video = container.add_stream_from_template(templates.video)
            assert isinstance(video, av.VideoStream)
            self._video = video
        if templates.audio is not None:
            audio = container.add_stream_from_template(templates.audio)
            assert isinstance(audio, av.AudioStream)
            self._audio = audio
        self.packets = 0

    def mux(
        self, video: bool, data: bytes, dts: int, pts: int, duration: int, keyframe: bool
    ) -> None:
        """Mux one frame; raises ``av.FFmpegError`` when FFmpeg rejects it."""
        stream = self._video if video else self._audio
        if stream is None:
            return
        packet = av.Packet(data)
        packet.dts = dts
        packet.pts = pts
        packet.duration = duration
        packet.time_base = MS
        packet.is_keyframe = keyframe
        packet.stream = stream
        self._container.mux_one(packet)
        self.packets += 1

    def close(self) -> bytes | None:
        """Finish the container (trailer, buffered PES/fragment): an fMP4 segment's bytes,
        or None when the segment is in its temporary file (then :meth:`commit` or
        :meth:`discard` it)."""
        self._container.close()
        return self._buffer.getvalue() if self._buffer is not None else None

    def commit(self, path: Path) -> int:
        """Give the finished temporary file its name (atomically); its size in bytes."""
        assert self._temporary is not None
        size = self._temporary.stat().st_size
        os.replace(self._temporary, path)
        return size

    def discard(self) -> None:
        """Remove the temporary file of a closed segment that is not kept."""
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)

    def abandon(self) -> None:
        """Drop a segment that failed; errors while closing are ignored."""
        with contextlib.suppress(av.FFmpegError, ValueError, OSError):
            self._container.close()
        with contextlib.suppress(OSError):
            self.discard()


def split_fmp4(data: bytes) -> tuple[bytes, bytes]:
    """Split a fragmented MP4 at its first top-level ``moof``: (init, media)."""
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        if kind == b"moof":
            return data[:pos], data[pos:]
        if size < 8:
            break
        pos += size
    raise ValueError("no moof box in fragmented MP4 output")


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``path`` whole: a temporary sibling first, then an atomic rename. If that
    fails (disk full), the temporary file is removed and ``path`` is left as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
