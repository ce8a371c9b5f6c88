"""Recordings: the MP4 made from a recorded session's segments, closing playlists and
removing temporary files a crash left behind, and deleting recordings past their
retention.

The MP4 is a stream-copy remux with PyAV of everything ``vod.m3u8`` lists (FFmpeg's HLS
demuxer reads the local playlist; when it is the master playlist of a session with
renditions, the source's playlist it lists first: the MP4 is the source), with the index
at the front (``faststart``) so players can start before the download ends. It is written
beside the segments under a temporary name and renamed when complete. Run
:func:`remux_to_mp4` in a worker thread.

Making the MP4 may be cut short by a crash (the session stays ``waiting``, a
``recording.mp4.tmp`` is left): :func:`remux_to_mp4` starts over from the segments, so the
next start simply makes it again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
                for packet in source.demux(streams):
                    if packet.dts is None or packet.size == 0:
                        continue
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
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
