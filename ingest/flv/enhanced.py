"""Enhanced RTMP (e-RTMP v1/v2) framing shared by audio and video tags.

Both ExAudioTagHeader and ExVideoTagHeader can carry:

* **ModEx** (v2) blocks, which modify the packet that follows. Each block is::

      UI8  size - 1          (0xFF: the size does not fit, a UI16 size - 1 follows)
      UI8[size] modex data
      UB[4] modex type | UB[4] next packet type

  and they repeat while the next packet type is ModEx again. Type 0 is
  TimestampOffsetNano: a UI24 of nanoseconds to add to the millisecond timestamp.
  Unknown ModEx types are skipped.

* **Multitrack**: a byte ``AvMultitrackType (high nibble) | packet type (low nibble)``,
  then the FourCC shared by all tracks unless the type is ManyTracksManyCodecs, then per
  track an optional FourCC (ManyTracksManyCodecs), a UI8 track id and, for the Many*
  types, a UI24 size of that track's data counted from just after the size field.
  OneTrack has no size: its data runs to the end of the message.
"""

from __future__ import annotations

from .packets import FlvError

ONE_TRACK = 0
MANY_TRACKS = 1
MANY_TRACKS_MANY_CODECS = 2

MODEX_TIMESTAMP_OFFSET_NANO = 0


def read_fourcc(payload: bytes, pos: int) -> bytes:
    """The four bytes at ``pos``; :class:`FlvError` when the payload ends first."""
    if pos + 4 > len(payload):
        raise FlvError(f"FourCC truncated: need 4 bytes at offset {pos}, have {len(payload)}")
    return payload[pos : pos + 4]


def fourcc_text(fourcc: bytes) -> str:
    """A FourCC as text, whatever its bytes (latin-1 maps every byte to one character)."""
    return fourcc.decode("latin-1")


def read_modex_chain(
    payload: bytes, pos: int, packet_type: int, modex_packet_type: int
) -> tuple[int, int, int]:
    """Follow ModEx blocks starting at ``pos`` while ``packet_type`` says ModEx.

    Returns ``(position after the chain, the final packet type, TimestampOffsetNano)``
    with the nanosecond offset 0 when none was sent. Every block consumes at least two
    bytes, so the loop is bounded by the payload length.
    """
    n = len(payload)
    nano = 0
    while packet_type == modex_packet_type:
        if pos >= n:
            raise FlvError("ModEx block truncated: no size byte")
        size = payload[pos] + 1
        pos += 1
        if size == 256:
            if pos + 2 > n:
                raise FlvError("ModEx block truncated: no 16-bit size")
            size = int.from_bytes(payload[pos : pos + 2], "big") + 1
            pos += 2
        if pos + size + 1 > n:
            raise FlvError(
                f"ModEx data of {size} bytes at offset {pos} overruns the {n}-byte payload"
            )
        data_start = pos
        pos += size
        type_byte = payload[pos]
        pos += 1
        modex_type = type_byte >> 4
        packet_type = type_byte & 0x0F
        if modex_type == MODEX_TIMESTAMP_OFFSET_NANO and size >= 3:
            nano = int.from_bytes(payload[data_start : data_start + 3], "big")
    return pos, packet_type, nano


def split_tracks(
    payload: bytes, pos: int, multitrack_type: int, fourcc: bytes | None
) -> list[tuple[bytes, int, int, int]]:
    """Locate the tracks of a Multitrack body that starts at ``pos``.

    ``fourcc`` is the shared FourCC already read from the header (``None`` for
    ManyTracksManyCodecs, where each track brings its own). Returns one
    ``(fourcc, track_id, data_start, data_end)`` per track, in message order.
    ``multitrack_type`` must be one of the three defined types.
    """
    n = len(payload)
    if multitrack_type == ONE_TRACK:
        if pos >= n:
            raise FlvError("OneTrack multitrack message has no track id")
        assert fourcc is not None
        return [(fourcc, payload[pos], pos + 1, n)]
    tracks: list[tuple[bytes, int, int, int]] = []
    while pos < n:
        if multitrack_type == MANY_TRACKS_MANY_CODECS:
            fourcc = read_fourcc(payload, pos)
            pos += 4
        if pos + 4 > n:
            raise FlvError(f"multitrack track header truncated at offset {pos} of {n}")
        track_id = payload[pos]
        size = int.from_bytes(payload[pos + 1 : pos + 4], "big")
        pos += 4
        end = pos + size
        if end > n:
            raise FlvError(
                f"track {track_id} declares {size} bytes at offset {pos}, "
                f"overrunning the {n}-byte payload"
            )
        assert fourcc is not None
        tracks.append((fourcc, track_id, pos, end))
        pos = end
    return tracks


def read_multitrack(
    payload: bytes, pos: int, media: str, nested: tuple[int, int]
) -> tuple[int, list[tuple[bytes, int, int, int]]] | None:
    """Read the Multitrack header at ``pos`` and locate the tracks after it.

    Returns ``(inner packet type, tracks)`` as :func:`split_tracks` gives them, or None
    for a multitrack layout not defined yet (nothing in it can be located). ``nested``
    holds the Multitrack and ModEx packet types, which may not appear inside.
    """
    if pos >= len(payload):
        raise FlvError(f"Multitrack {media} message ends before its multitrack type")
    multitrack_type = payload[pos] >> 4
    packet_type = payload[pos] & 0x0F
    pos += 1
    if packet_type in nested:
        raise FlvError(f"Multitrack {media} message nests packet type {packet_type}")
    if multitrack_type > MANY_TRACKS_MANY_CODECS:
        return None
    shared: bytes | None = None
    if multitrack_type != MANY_TRACKS_MANY_CODECS:
        shared = read_fourcc(payload, pos)
        pos += 4
    return packet_type, split_tracks(payload, pos, multitrack_type, shared)
