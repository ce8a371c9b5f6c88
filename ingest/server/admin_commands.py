"""What the operators' commands do (``rtmp-ingest streams ...``, ``sessions ...``,
``analytics``).

Streams change only through :class:`sessions.streams.Streams`. Output is an aligned table
or a block for people (durations like ``1m05s``, bytes like ``12.3 MB``, times in UTC, said
in a table's heading or after each time of a block), or with ``--json`` the same objects as
the HTTP API. A stream key is printed only by ``streams create`` and ``streams rotate-key``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ingest.profiles import (
    Profile,
    ProfileError,
    format_profiles,
    parse_profiles,
    profiles_from_json,
)
from sessions.http.deps import TimeRange, time_range
from sessions.http.errors import ApiError
from sessions.http.timefmt import format_display_time
from sessions.http.views import analytics_view, as_json, session_view, stream_view
from sessions.http.views import stream_with_key_view as key_view
from sessions.streams import InvalidName, Streams
from storage import SessionRecord, Store, StreamNameTaken, StreamRecord

#: A command: it prints its result, or raises :class:`CommandError`.
Command = Callable[["Admin", argparse.Namespace], Awaitable[None]]


class CommandError(Exception):
    """A failure to report on stderr (exit status 1)."""


@dataclass(slots=True)
class Admin:
    """What every command works with."""

    store: Store
    streams: Streams
    ingest_url: str
    as_json: bool
    #: The RTMPS server URL, when RTMPS is on.
    ingest_rtmps_url: str | None = None

    @property
    def ingest_urls(self) -> list[str]:
        tls = self.ingest_rtmps_url
        return [self.ingest_url] if tls is None else [self.ingest_url, tls]

    def servers(self) -> list[tuple[str, str]]:
        """The "Server" lines of a block (RTMPS on a line of its own)."""
        if self.ingest_rtmps_url is None:
            return [("Server", self.ingest_url)]
        return [("Server", self.ingest_url), ("Server (TLS)", self.ingest_rtmps_url)]

    async def stream(self, ref: str) -> StreamRecord:
        stream = await self.streams.resolve(ref)
        if stream is None:
            raise CommandError(f"no stream named or with id {ref!r}")
        return stream

    async def state(self, stream: StreamRecord) -> str | None:
        """Its open session's status (``live``, ``reconnecting``), or None."""
        session = await self.store.active_session(stream.id)
        return None if session is None else session.status

    async def playback_id(self, stream_id: str) -> str | None:
        stream = await self.store.get_stream(stream_id)
        return None if stream is None else stream.playback_id


def emit(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _stream_status(stream: StreamRecord, state: str | None) -> str:
    """``state``: its open session's status (live, reconnecting), or None."""
    if stream.disabled:
        return "disabled"
    return state or "idle"


def _json_stream(admin: Admin, stream: StreamRecord, state: str | None) -> dict[str, Any]:
    return as_json(
        stream_view(
            stream,
            ingest_url=admin.ingest_urls,
            live=state is not None,
            reconnecting=state == "reconnecting",
        )
    )


def _stream_block(admin: Admin, stream: StreamRecord, state: str | None) -> str:
    return fields(
        [
            ("Name", stream.name),
            ("ID", stream.id),
            ("Playback ID", stream.playback_id),
            ("Status", _stream_status(stream, state)),
            ("Record", yes_no(stream.record)),
            ("Profiles", _stream_profiles(stream)),
            *admin.servers(),
            ("Last seen", format_utc(stream.last_seen)),
            ("Created", format_utc(stream.created_at)),
            ("Updated", format_utc(stream.updated_at)),
        ]
    )


def _stream_profiles(stream: StreamRecord) -> str:
    try:
        return format_profiles(profiles_from_json(stream.profiles)) or "-"
    except ProfileError as exc:
        return f"invalid: {exc}"


def _print_key(admin: Admin, stream: StreamRecord, key: str, state: str | None, what: str) -> None:
    if admin.as_json:
        view = key_view(
            stream,
            key,
            ingest_url=admin.ingest_urls,
            live=state is not None,
            reconnecting=state == "reconnecting",
        )
        emit(as_json(view))
        return
    print(f"{what} {stream.name!r}.\n")
    print(fields([*admin.servers(), ("Stream Key", key)]))
    print()
    print(fields([("Name", stream.name), ("ID", stream.id), ("Playback ID", stream.playback_id)]))
    print("\nThe stream key is shown only now: keep it secret, like a password.")


# --- formatting for people ----------------------------------------------------------------

_BYTE_UNITS = ("kB", "MB", "GB", "TB", "PB")


def format_duration(seconds: float | None) -> str:
    """``45s``, ``1m05s``, ``2h03m09s``; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    total = int(seconds + 0.5)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_bytes(count: int | None) -> str:
    """``512 B``, ``12.3 MB`` (decimal units, as network rates are counted)."""
    if count is None or count < 0:
        return "-"
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in _BYTE_UNITS:
        value /= 1000
        if value < 999.95 or unit == _BYTE_UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_utc(ts: float | None) -> str:
    """A time in a block: ``2026-11-21 19:24:10 UTC``; ``-`` when unknown. (Tables say
    ``(UTC)`` in the column's heading instead.)"""
    return "-" if ts is None else f"{format_display_time(ts)} UTC"


def format_rate(bytes_per_second: float) -> str:
    """``1.2 MB/s`` (decimal units)."""
    return f"{format_bytes(int(bytes_per_second))}/s"


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last one is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fields(pairs: Sequence[tuple[str, str]], indent: str = "") -> str:
    """``Label:  value`` lines with the values lined up."""
    width = max((len(label) for label, _ in pairs), default=0) + 1
    return "\n".join(f"{indent}{(label + ':').ljust(width)}  {value}" for label, value in pairs)


# --- streams ------------------------------------------------------------------------------


def _profiles(given: list[str]) -> tuple[Profile, ...]:
    """Profiles given one per argument (each may hold several, comma-separated)."""
    try:
        return parse_profiles(",".join(given))
    except ProfileError as exc:
        raise CommandError(f"invalid profiles: {exc}") from None


async def streams_create(admin: Admin, args: argparse.Namespace) -> None:
    ladder = _profiles(args.profiles)
    try:
        stream, key = await admin.streams.create(args.name, record=args.record, profiles=ladder)
    except InvalidName as exc:
        raise CommandError(f"invalid stream name: {exc}") from None
    except StreamNameTaken:
        raise CommandError(f"a stream named {args.name.strip()!r} already exists") from None
    _print_key(admin, stream, key, None, "Created stream")


async def streams_list(admin: Admin, args: argparse.Namespace) -> None:
    records, total = await admin.store.list_streams(offset=args.offset, limit=args.limit)
    live = [await admin.state(stream) for stream in records]
    if admin.as_json:
        items = [_json_stream(admin, s, lv) for s, lv in zip(records, live, strict=True)]
        emit_page(items, total, args)
        return
    if empty_page("streams", records, total, args):
        return
    rows = [
        [
            s.name,
            s.id,
            _stream_status(s, lv),
            yes_no(s.record),
            format_display_time(s.last_seen),
            format_display_time(s.created_at),
        ]
        for s, lv in zip(records, live, strict=True)
    ]
    print(table(["NAME", "ID", "STATUS", "RECORD", "LAST SEEN (UTC)", "CREATED (UTC)"], rows))
    print_range(args.offset, len(records), total, "stream")


async def streams_show(admin: Admin, args: argparse.Namespace) -> None:
    stream = await admin.stream(args.ref)
    state = await admin.state(stream)
    if admin.as_json:
        emit(_json_stream(admin, stream, state))
    else:
        print(_stream_block(admin, stream, state))


async def streams_set_profiles(admin: Admin, args: argparse.Namespace) -> None:
    ladder = _profiles(args.profiles)
    stream = await admin.stream(args.ref)
    changed = await admin.streams.update(stream.id, profiles=ladder)
    if changed is None:
        raise CommandError(f"no stream named or with id {args.ref!r}")
    if admin.as_json:
        emit(_json_stream(admin, changed, await admin.state(changed)))
    elif ladder:
        print(f"Stream {changed.name!r}: profiles {format_profiles(ladder)}.")
        print("Its next session makes these renditions (a live one keeps its own).")
    else:
        print(f"Stream {changed.name!r}: no profiles of its own (the server's default applies).")


async def streams_rotate_key(admin: Admin, args: argparse.Namespace) -> None:
    stream = await admin.stream(args.ref)
    rotated = await admin.streams.rotate_key(stream.id)
    if rotated is None:
        raise CommandError(f"no stream named or with id {args.ref!r}")
    stream, key = rotated
    _print_key(admin, stream, key, await admin.state(stream), "New stream key for")
    if not admin.as_json:
        print("The old key no longer works; a live publisher keeps going until it reconnects.")


async def _set_disabled(admin: Admin, ref: str, disabled: bool) -> None:
    stream = await admin.stream(ref)
    changed = await admin.streams.set_disabled(stream.id, disabled)
    if changed is None:
        raise CommandError(f"no stream named or with id {ref!r}")
    if admin.as_json:
        emit(_json_stream(admin, changed, await admin.state(changed)))
    else:
        print(f"Stream {changed.name!r} {'disabled' if disabled else 'enabled'}.")


async def streams_disable(admin: Admin, args: argparse.Namespace) -> None:
    await _set_disabled(admin, args.ref, True)


async def streams_enable(admin: Admin, args: argparse.Namespace) -> None:
    await _set_disabled(admin, args.ref, False)


def _confirm(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


async def streams_delete(admin: Admin, args: argparse.Namespace) -> None:
    stream = await admin.stream(args.ref)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CommandError(
                f"not deleting stream {stream.name!r} without confirmation: pass --yes"
            )
        if not _confirm(f"Delete stream {stream.name!r} ({stream.id})?"):
            print("Not deleted.")
            return
    if not await admin.streams.delete(stream.id):
        raise CommandError(f"no stream named or with id {args.ref!r}")
    print(f"Deleted stream {stream.name!r}; its past sessions stay in the ledger.")


# --- sessions -----------------------------------------------------------------------------


def _times(args: argparse.Namespace) -> TimeRange:
    """``--since``/``--until``, read as the API reads ``since``/``until``."""
    try:
        return time_range(since=args.since, until=args.until)
    except ApiError as exc:
        raise CommandError(exc.message) from None


async def _stream_id(admin: Admin, ref: str | None) -> str | None:
    return None if ref is None else (await admin.stream(ref)).id


async def sessions_list(admin: Admin, args: argparse.Namespace) -> None:
    times = _times(args)
    records, total = await admin.store.list_sessions(
        stream_id=await _stream_id(admin, args.stream),
        status=args.status,
        since=times.since,
        until=times.until,
        offset=args.offset,
        limit=args.limit,
    )
    if admin.as_json:
        items = [await _session_json(admin, record) for record in records]
        emit_page(items, total, args)
        return
    if empty_page("sessions", records, total, args):
        return
    rows = [
        [
            s.id,
            s.name,
            s.status,
            format_display_time(s.created_at),
            format_duration(s.duration),
            format_bytes(s.bytes_received),
            s.end_reason or "-",
        ]
        for s in records
    ]
    headers = ["ID", "STREAM", "STATUS", "STARTED (UTC)", "DURATION", "BYTES", "END REASON"]
    print(table(headers, rows))
    print_range(args.offset, len(records), total, "session")


async def _session_json(admin: Admin, record: SessionRecord) -> dict[str, Any]:
    return as_json(session_view(record, playback_id=await admin.playback_id(record.stream_id)))


def _track_line(track: dict[str, Any]) -> str:
    parts = [str(track.get("kind", "track")), str(track.get("codec", "?"))]
    if track.get("width") and track.get("height"):
        parts.append(f"{track['width']}x{track['height']}")
    if track.get("fps"):
        parts.append(f"{track['fps']} fps")
    if track.get("sample_rate"):
        parts.append(f"{track['sample_rate']} Hz")
    if track.get("channels"):
        parts.append(f"{track['channels']} ch")
    if track.get("bitrate"):
        parts.append(f"{int(track['bitrate']) // 1000} kb/s")
    return " ".join(parts)


def _rendition_line(counters: dict[str, Any], produced: list[dict[str, Any]]) -> str:
    """``360p 640x360 800 kb/s: 3 segments (1.2 MB), 180 frames, 0 dropped``."""
    name = counters.get("name", "?")
    profile = next((p for p in produced if p.get("name") == name), None)
    shape = (
        ""
        if profile is None
        else (f" {profile['width']}x{profile['height']} {int(profile['bitrate']) // 1000} kb/s")
    )
    return (
        f"{name}{shape}: {counters.get('segments', 0)} segments "
        f"({format_bytes(int(counters.get('bytes', 0)))}), {counters.get('frames', 0)} frames, "
        f"{counters.get('dropped_frames', 0)} dropped"
    )


async def sessions_show(admin: Admin, args: argparse.Namespace) -> None:
    record = await admin.store.get_session(args.id)
    if record is None:
        raise CommandError(f"no session with id {args.id!r}")
    if admin.as_json:
        emit(await _session_json(admin, record))
        return
    pairs = [
        ("ID", record.id),
        ("Stream", f"{record.name} ({record.stream_id})"),
        ("Status", record.status),
        ("Started", format_utc(record.created_at)),
        ("Last seen", format_utc(record.last_seen)),
        ("Ended", format_utc(record.ended_at)),
        ("End reason", record.end_reason or "-"),
        ("Duration", format_duration(record.duration)),
        ("Ingest time", format_duration(record.ingest_seconds)),
        ("Reconnects", str(record.reconnects)),
        ("Time in gaps", format_duration(record.gap_seconds)),
        ("Media duration", format_duration(record.media_duration)),
        ("Bytes received", format_bytes(record.bytes_received)),
        ("Media bytes", format_bytes(record.media_bytes)),
        ("Ingest rate", format_rate(record.ingest_rate)),
        ("Segments", f"{record.source_segments} ({format_bytes(record.source_bytes)})"),
        ("Viewer time", format_duration(record.viewer_seconds)),
        (
            "Transcoded",
            f"{record.transcoded_segments} segments, "
            f"{format_duration(record.transcoded_segments_duration)} "
            f"({format_bytes(record.transcoded_bytes)})",
        ),
        ("Outgoing rate", format_rate(record.outgoing_rate)),
        ("Healthy", yes_no(record.is_healthy)),
        ("Remote address", record.remote_addr or "-"),
        ("Encoder", record.encoder or "-"),
        ("Record", yes_no(record.record)),
        ("Recording", record.recording_status or "-"),
        ("Recording URL", record.recording_url or "-"),
        ("MP4 URL", record.mp4_url or "-"),
    ]
    if record.err_message:
        pairs.append(("Error", record.err_message))
    print(fields(pairs))
    for track in record.tracks:
        print(f"  track: {_track_line(track)}")
    for rendition in record.renditions:
        print(f"  rendition: {_rendition_line(rendition, record.profiles)}")
    for issue in record.issues:
        print(f"  issue: {issue.get('code', '?')}: {issue.get('message', '')}")
    for gap in record.gaps:
        print(
            f"  gap: {format_utc(gap['from'])} to {format_utc(gap['to'])}"
            f" ({float(gap['seconds']):.3f} s)"
        )
    for entry in record.multistream:
        print(f"  multistream: {_multistream_line(entry)}")


def _multistream_line(entry: dict[str, Any]) -> str:
    """One target's line of ``sessions show``."""
    line = (
        f"{entry.get('name')} ({entry.get('target_id')}) {entry.get('status')},"
        f" connected {format_duration(entry.get('connected_seconds'))},"
        f" sent {format_bytes(entry.get('bytes_sent'))},"
        f" {entry.get('reconnects', 0)} reconnects,"
        f" skipped {format_bytes(entry.get('skipped_bytes'))}"
    )
    if entry.get("last_error"):
        line += f"; last error: {entry['last_error']}"
    return line


# --- analytics ----------------------------------------------------------------------------


async def analytics(admin: Admin, args: argparse.Namespace) -> None:
    """The totals ``GET /api/analytics`` gives, from the same query."""
    times = _times(args)
    stream = None if args.stream is None else await admin.stream(args.stream)
    totals = await admin.store.analytics(
        since=times.since, until=times.until, stream_id=None if stream is None else stream.id
    )
    view = analytics_view(totals, since=times.since, until=times.until)
    if admin.as_json:
        emit(as_json(view))
        return
    pairs = [
        ("Sessions", str(view.count)),
        ("Ingest time", format_duration(view.total_ingest_seconds)),
        ("Bytes received", f"{format_bytes(view.total_bytes)} ({view.total_bytes} bytes)"),
        ("Viewer time", format_duration(view.total_viewer_seconds)),
        ("Transcoded time", format_duration(view.total_transcoded_seconds)),
        ("Created since", _bound(times.since)),
        ("Created before", _bound(times.until)),
    ]
    if stream is not None:
        pairs.append(("Stream", f"{stream.name} ({stream.id})"))
    print(fields(pairs))


def _bound(ts: float | None) -> str:
    return "(no limit)" if ts is None else format_utc(ts)


def print_range(offset: int, shown: int, total: int, noun: str) -> None:
    if shown < total:
        print(f"\n{offset + 1}-{offset + shown} of {total} {noun}s (--offset, --limit for more)")


def emit_page(items: list[Any], total: int, args: argparse.Namespace) -> None:
    """A listing as the API's page object."""
    emit({"items": items, "total": total, "offset": args.offset, "limit": args.limit})


def empty_page(what: str, records: Sequence[object], total: int, args: argparse.Namespace) -> bool:
    """Say so when a listing page is empty; True if it was."""
    if records:
        return False
    print(f"No {what}." if total == 0 else f"No {what} at offset {args.offset} ({total}).")
    return True
