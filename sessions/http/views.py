"""Records as JSON: the one place that shapes streams and sessions (API and CLI alike)."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from ingest.config import Config, parse_listen
from sessions.health import is_open
from sessions.http import schemas
from sessions.http.timefmt import format_optional_time, format_time, round_seconds
from sessions.targets import masked_url
from storage.models import Analytics, SessionRecord, StreamRecord, TargetRecord


def ingest_url(config: Config, port: int | None = None) -> str:
    """The RTMP server URL publishers paste into their encoder (without the key);
    ``port`` is the one actually bound, when ``rtmp.listen`` asked for any free one."""
    if config.http.public_rtmp_url:
        return config.http.public_rtmp_url
    return f"rtmp://{socket.gethostname()}:{port or config.rtmp.port}/{config.rtmp.app}"


def ingest_rtmps_url(config: Config, port: int | None = None) -> str | None:
    """The RTMPS server URL (``[http] public_rtmps_url``, or this host and the RTMPS
    port), or None with RTMPS off."""
    if not config.rtmps.enabled:
        return None
    if config.http.public_rtmps_url:
        return config.http.public_rtmps_url
    return f"rtmps://{socket.gethostname()}:{port or config.rtmps.port}/{config.rtmp.app}"


def ingest_urls(config: Config) -> list[str]:
    """Every URL publishers may use: RTMP, and RTMPS when it is on."""
    tls = ingest_rtmps_url(config)
    return [ingest_url(config)] if tls is None else [ingest_url(config), tls]


def public_http_url(config: Config, port: int | None = None) -> str:
    """The base URL viewers reach the playback routes at (``[http] public_url``)."""
    if config.http.public_url:
        return config.http.public_url.rstrip("/")
    return f"http://{socket.gethostname()}:{port or parse_listen(config.http.listen)[1]}"


def stream_view(
    stream: StreamRecord,
    *,
    ingest_url: str | Sequence[str],
    live: bool,
    playback_base: str | None = None,
    reconnecting: bool = False,
) -> schemas.Stream:
    """A stream as JSON; the key is never part of it (see :func:`stream_with_key_view`).
    ``ingest_url`` is the RTMP URL, or every URL (RTMP first, then RTMPS)."""
    return schemas.Stream(
        **_stream_fields(
            stream,
            ingest_url=ingest_url,
            live=live,
            playback_base=playback_base,
            reconnecting=reconnecting,
        )
    )


def stream_with_key_view(
    stream: StreamRecord,
    key: str,
    *,
    ingest_url: str | Sequence[str],
    live: bool,
    playback_base: str | None = None,
    reconnecting: bool = False,
) -> schemas.StreamWithKey:
    """A stream with its new key: only right after create or rotate-key."""
    fields = _stream_fields(
        stream,
        ingest_url=ingest_url,
        live=live,
        playback_base=playback_base,
        reconnecting=reconnecting,
    )
    return schemas.StreamWithKey(**fields, stream_key=key)


def _stream_fields(
    stream: StreamRecord,
    *,
    ingest_url: str | Sequence[str],
    live: bool,
    playback_base: str | None,
    reconnecting: bool = False,
) -> dict[str, Any]:
    """``live``: it has an open session (``reconnecting``: one waiting for a reconnect)."""
    urls = [ingest_url] if isinstance(ingest_url, str) else list(ingest_url)
    return {
        "id": stream.id,
        "name": stream.name,
        "playback_id": stream.playback_id,
        "ingest_url": urls[0],
        "ingest_urls": urls,
        "playback_url": (
            f"{playback_base}/hls/{stream.playback_id}/index.m3u8" if playback_base else None
        ),
        "disabled": stream.disabled,
        "record": stream.record,
        "profiles": [dict(profile) for profile in stream.profiles],
        "status": "reconnecting" if live and reconnecting else "live" if live else "idle",
        "is_active": live,
        "last_seen": format_optional_time(stream.last_seen),
        "created_at": format_time(stream.created_at),
        "updated_at": format_time(stream.updated_at),
    }


def target_view(target: TargetRecord) -> schemas.Target:
    """A target as JSON, its key masked."""
    return schemas.Target(
        id=target.id,
        stream_id=target.stream_id,
        name=target.name,
        url=masked_url(target),
        disabled=target.disabled,
        created_at=format_time(target.created_at),
        updated_at=format_time(target.updated_at),
    )


def session_view(session: SessionRecord, *, playback_id: str | None) -> schemas.Session:
    """A session as JSON, with its stream's playback id (None once the stream is deleted)."""
    return schemas.Session(
        id=session.id,
        stream_id=session.stream_id,
        name=session.name,
        status=session.status,
        created_at=format_time(session.created_at),
        ended_at=format_optional_time(session.ended_at),
        last_seen=format_time(session.last_seen),
        updated_at=format_time(session.updated_at),
        duration=round_seconds(session.duration),
        media_duration=round_seconds(session.media_duration),
        ingest_seconds=round_seconds(session.ingest_seconds),
        reconnects=int(session.reconnects),
        gaps=[_gap(gap) for gap in session.gaps],
        gap_seconds=round_seconds(session.gap_seconds),
        bytes_received=int(session.bytes_received),
        media_bytes=int(session.media_bytes),
        ingest_rate=round_seconds(session.ingest_rate),
        tracks=[dict(track) for track in session.tracks],
        is_healthy=session.is_healthy,
        issues=[_issue(issue) for issue in session.issues],
        end_reason=session.end_reason,
        err_message=session.err_message,
        remote_addr=session.remote_addr,
        encoder=session.encoder,
        source_segments=int(session.source_segments),
        source_segments_duration=round_seconds(session.source_segments_duration),
        source_bytes=int(session.source_bytes),
        viewer_seconds=round_seconds(session.viewer_seconds),
        record=session.record,
        recording_status=session.recording_status,
        recording_url=session.recording_url,
        mp4_url=session.mp4_url,
        playback_id=playback_id,
        multistream=[schemas.MultistreamEntry(**entry) for entry in session.multistream],
        profiles=[schemas.RenditionProfile(**profile) for profile in session.profiles],
        renditions=[schemas.RenditionCounters(**counters) for counters in session.renditions],
        transcoded_segments=int(session.transcoded_segments),
        transcoded_segments_duration=round_seconds(session.transcoded_segments_duration),
        transcoded_bytes=int(session.transcoded_bytes),
        outgoing_rate=round_seconds(session.outgoing_rate),
    )


def analytics_view(
    totals: Analytics, *, since: float | None, until: float | None
) -> schemas.Analytics:
    """The store's totals over ``[since, until)`` as JSON."""
    return schemas.Analytics(
        count=totals.count,
        total_ingest_seconds=round_seconds(totals.total_ingest_seconds),
        total_bytes=int(totals.total_bytes),
        total_viewer_seconds=round_seconds(totals.total_viewer_seconds),
        total_transcoded_seconds=round_seconds(totals.total_transcoded_seconds),
        since=format_optional_time(since),
        until=format_optional_time(until),
    )


def _gap(gap: dict[str, Any]) -> schemas.Gap:
    return schemas.Gap.model_validate(
        {
            "from": format_time(float(gap["from"])),
            "to": format_time(float(gap["to"])),
            "seconds": round_seconds(float(gap["seconds"])),
        }
    )


def _issue(issue: dict[str, Any]) -> dict[str, Any]:
    """An issue with its times (epoch seconds in the record) as ISO times, and whether it
    is still ``open``. Entries stored without ``started_at`` (the segmenter's, and those
    written before the live health checks) started ``at`` and stay open."""
    shaped = dict(issue)
    shaped.setdefault("started_at", shaped.get("at"))
    shaped.setdefault("ended_at", None)
    for name in ("at", "started_at", "ended_at"):
        value = shaped.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            shaped[name] = format_time(value)
    shaped["open"] = is_open(issue)
    return shaped


def as_json(model: BaseModel) -> dict[str, Any]:
    """A view as plain JSON-ready data (what the CLI prints with ``--json``)."""
    return model.model_dump(mode="json")
