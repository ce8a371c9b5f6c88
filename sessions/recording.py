"""Recordings: the MP4 made from a recorded session's segments, closing playlists and
removing temporary files a crash left behind, and deleting recordings past their
retention.

The MP4 is a stream-copy remux with PyAV of everything ``vod.m3u8`` lists (FFmpeg's HLS
demuxer reads the local playlist; when it is the master playlist of a session with
renditions, the source's playlist it lists first: the MP4 is the source), with the index
at the front (``faststart``) so players can start before the download ends. It is written
beside the segments under a temporary name and renamed when complete. Run
:func:`remux_to_mp4` in a worker thread.

A session continued after its publisher reconnected has parts whose timestamps each start
again at 0 (after an ``#EXT-X-DISCONTINUITY``): the MP4 puts them back to back, each part
shifted to start where the one before ended (its latest packet's end), with no padding
for the gap (:class:`_Continuous`).

Making the MP4 may be cut short by a crash (the session stays ``waiting``, a
``recording.mp4.tmp`` is left): :func:`remux_to_mp4` starts over from the segments, so the
next start simply makes it again.
"""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from sessions.playback import LIVE_PLAYLIST, RECORDING, VOD_PLAYLIST, valid_name

ENDLIST = "#EXT-X-ENDLIST"
#: What marks a master playlist.
MASTER_TAG = "#EXT-X-STREAM-INF"
#: Recordings made at once: each takes one of the media threads the live segmenters use.
REMUX_CONCURRENCY = 2


class RecordingError(Exception):
    """The recording could not be made (the message says why)."""


def remux_to_mp4(folder: Path) -> Path:
    """``folder/vod.m3u8`` → ``folder/recording.mp4``; returns its path.

    Safe to run again on what a crash left: the playlists get their end if they lack it
    (FFmpeg would wait for more segments of an unfinished one) and leftover temporaries
    (a half-made MP4, a half-written segment) are removed first."""
    playlist = source_playlist(folder)
    target = folder / RECORDING
    partial = folder / (RECORDING + ".tmp")
    if not folder.is_dir():
        raise RecordingError("the session's media folder is missing")
    close_playlists(folder)
    remove_partial_files(folder)
    if playlist is None or not playlist.is_file():
        raise RecordingError(f"{VOD_PLAYLIST} is missing")
    try:
        with av.open(str(playlist), options={"allowed_extensions": "ALL"}) as source:
            streams = [s for s in source.streams if s.type in ("audio", "video")]
            if not streams:
                raise RecordingError("the recording has no audio or video")
            with av.open(
                str(partial), "w", format="mp4", options={"movflags": "+faststart"}
            ) as out:
                mapping = {s.index: out.add_stream_from_template(s) for s in streams}
                continuous = _Continuous()
                for packet in source.demux(streams):
                    if packet.dts is None or packet.size == 0:
                        continue
                    for ready in continuous.push(packet):
                        _mux(out, mapping, ready)
                for ready in continuous.flush():
                    _mux(out, mapping, ready)
    except av.error.FFmpegError as exc:
        partial.unlink(missing_ok=True)
        raise RecordingError(f"remux failed: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target


def source_playlist(folder: Path) -> Path | None:
    """The source's whole playlist: ``vod.m3u8``, or the first variant it lists when it
    is a master playlist (a session with renditions); None if there is none."""
    playlist = folder / VOD_PLAYLIST
    try:
        text = playlist.read_text()
    except FileNotFoundError:
        return None
    if MASTER_TAG not in text:
        return playlist
    lines = text.splitlines()
    for index, line in enumerate(lines[:-1]):
        uri = lines[index + 1].strip()
        if line.startswith(MASTER_TAG) and "/" not in uri and valid_name(uri):
            return folder / uri
    return None


def _mux(
    out: av.container.OutputContainer,
    mapping: dict[int, av.stream.Stream],
    packet: av.Packet[Any],
) -> None:
    packet.stream = mapping[packet.stream.index]
    out.mux(packet)


class _Continuous:
    """Makes the demuxed timestamps continuous across the parts of a session.

    A stream's DTS going back from its last one starts a new part on that stream (a
    reconnect's segmenter started its timeline at 0 again). The demuxer interleaves the
    streams' packets across a segment boundary, so a new part's packets are held until
    every stream has reached it (or :data:`_HOLD` packets wait, or the input ends); then
    the part's shift is fixed, from where the parts before it ended (the latest packet's
    end) to where it starts (its earliest packet), and the held packets go on. Within a
    part nothing moves."""

    def __init__(self) -> None:
        #: Per part that is settled, the seconds added to its packets.
        self._offsets: list[Fraction] = [Fraction(0)]
        #: Per input stream: the part it is in, and its last demuxed (raw) DTS.
        self._part: dict[int, int] = {}
        self._raw: dict[int, int] = {}
        #: Per input stream, the last DTS let through (shifted).
        self._last: dict[int, int] = {}
        #: The end (DTS plus duration, seconds, shifted) of the latest packet let through.
        self._end = Fraction(0)
        #: Packets of parts not settled yet, with their part; and each such part's
        #: earliest DTS (seconds).
        self._held: list[tuple[int, av.Packet[Any]]] = []
        self._starts: dict[int, Fraction] = {}

    def push(self, packet: av.Packet[Any]) -> list[av.Packet[Any]]:
        """Take one demuxed packet; returns those that may be muxed now, shifted."""
        index = packet.stream.index
        assert packet.dts is not None
        part = self._part.get(index, 0)
        raw = self._raw.get(index)
        if raw is not None and packet.dts < raw:
            part += 1
            self._part[index] = part
        self._part.setdefault(index, part)
        self._raw[index] = packet.dts
        if part < len(self._offsets):
            return [self._shift(packet, part)]
        start = packet.dts * packet.time_base
        if part not in self._starts or start < self._starts[part]:
            self._starts[part] = start
        self._held.append((part, packet))
        ready: list[av.Packet[Any]] = []
        while self._held and (
            all(p >= len(self._offsets) for p in self._part.values()) or len(self._held) > _HOLD
        ):
            ready += self._settle()
        return ready

    def flush(self) -> list[av.Packet[Any]]:
        """The input ended: the packets still held, shifted."""
        ready: list[av.Packet[Any]] = []
        while self._held:
            ready += self._settle()
        return ready

    def _settle(self) -> list[av.Packet[Any]]:
        """Fix the next part's shift and let its held packets through."""
        part = len(self._offsets)
        start = self._starts.pop(part, self._end)
        self._offsets.append(self._end - start)
        ready = [self._shift(p, part) for q, p in self._held if q == part]
        self._held = [(q, p) for q, p in self._held if q != part]
        return ready

    def _shift(self, packet: av.Packet[Any], part: int) -> av.Packet[Any]:
        time_base = packet.time_base
        index = packet.stream.index
        assert packet.dts is not None
        ticks = round(self._offsets[part] / time_base)
        dts = packet.dts + ticks
        last = self._last.get(index)
        if last is not None and dts <= last:
            dts = last + 1  # a part's first packet may start a tick early on one track
        shift = dts - packet.dts
        packet.dts = dts
        if packet.pts is not None:
            packet.pts = max(packet.pts + shift, dts)
        self._last[index] = dts
        end = (dts + (packet.duration or 0)) * time_base
        if end > self._end:
            self._end = end
        return packet


#: Most packets held while waiting for every stream to reach a new part (a stream that
#: has no packet in it would hold them forever).
_HOLD = 500


def close_playlists(folder: Path) -> bool:
    """Append ``#EXT-X-ENDLIST`` to the playlists of a session that ended without
    finishing them (the server died), its renditions' (in its sub-folders) too; True if
    any was changed. A master playlist is left as it is."""
    changed = False
    for sub in _subfolders(folder):
        changed = close_playlists(sub) or changed
    for name in (LIVE_PLAYLIST, VOD_PLAYLIST):
        path = folder / name
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        if ENDLIST in text or MASTER_TAG in text:
            continue
        text = text.rstrip("\n") + "\n"
        if name == VOD_PLAYLIST:
            text = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD")
        partial = path.with_name(name + ".tmp")
        partial.write_text(text + ENDLIST + "\n")
        os.replace(partial, path)
        changed = True
    return changed


def _subfolders(folder: Path) -> list[Path]:
    """A session folder's rendition folders (not followed through links)."""
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []


def remove_partial_files(folder: Path) -> int:
    """Delete the ``*.tmp`` files a crash left in a session's folder (the segment that
    was being written, a playlist or recording half replaced), and in its renditions'
    folders: nothing lists them, and the segment alone can be megabytes. Returns how
    many were removed."""
    removed = sum(remove_partial_files(sub) for sub in _subfolders(folder))
    for path in folder.glob("*.tmp"):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def delete_media(folder: Path) -> None:
    """Remove a session's media folder (retention, or media nobody may play any more)."""
    shutil.rmtree(folder, ignore_errors=True)
