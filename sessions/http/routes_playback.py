"""HLS and recording playback for viewers: no token, addressed by ``playback_id``.

Playlists are short-lived in caches (their content changes every segment), segments and
recordings are immutable; MP4 recordings answer range requests; HEAD answers as GET without
the body. Every answer, a 404 included, allows any origin so browser players (hls.js) can
read it: the request guard adds those headers (:data:`sessions.http.guard.PLAYBACK_CORS`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from sessions.http import schemas
from sessions.http.errors import ApiError
from sessions.playback import MIME_TYPES, Playback

router = APIRouter(tags=["playback"])

_PLAYLIST_CACHE = "max-age=1, must-revalidate"
_IMMUTABLE = "public, max-age=31536000, immutable"


def _served(description: str, *kinds: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of a playback route: the files it serves, or a 404."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        200: {"description": description, "content": {MIME_TYPES[k]: binary for k in kinds}},
        404: {"model": schemas.ErrorBody, "description": "Not live, or no such file"},
    }


def _playback(request: Request) -> Playback:
    playback = request.app.state.playback
    assert isinstance(playback, Playback)
    return playback


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


#: Every playback URL, as route templates.
_LIVE_PLAYLIST = "/hls/{playback_id}/index.m3u8"
_LIVE_FILE = "/hls/{playback_id}/{session_id}/{name}"
_RECORDING_FILE = "/recordings/{playback_id}/{session_id}/{name}"
#: A rendition's files, in its profile's folder.
_LIVE_RENDITION_FILE = "/hls/{playback_id}/{session_id}/{rendition}/{name}"
_RECORDING_RENDITION_FILE = "/recordings/{playback_id}/{session_id}/{rendition}/{name}"


@router.options(_LIVE_PLAYLIST, include_in_schema=False)
@router.options(_LIVE_FILE, include_in_schema=False)
@router.options(_RECORDING_FILE, include_in_schema=False)
@router.options(_LIVE_RENDITION_FILE, include_in_schema=False)
@router.options(_RECORDING_RENDITION_FILE, include_in_schema=False)
async def preflight() -> Response:
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
            "Access-Control-Allow-Headers": "Range",
            "Access-Control-Max-Age": "86400",
        },
    )


@router.head(_LIVE_PLAYLIST, include_in_schema=False)
@router.get(
    _LIVE_PLAYLIST,
    summary="Live playlist of a stream",
    response_class=Response,
    responses=_served(
        "The live session's playlist: a master playlist of the source and its renditions "
        "when the stream has profiles, else the source's media playlist",
        "m3u8",
    ),
)
async def live_playlist(request: Request, playback_id: str) -> Response:
    text = await _playback(request).live_playlist(playback_id)
    if text is None:
        raise _not_found("live stream")
    return Response(text, media_type=MIME_TYPES["m3u8"], headers={"Cache-Control": _PLAYLIST_CACHE})


@router.head(_LIVE_FILE, include_in_schema=False)
@router.get(
    _LIVE_FILE,
    summary="Live playlist or segment",
    response_class=Response,
    responses=_served("A playlist or a segment", "m3u8", "ts", "m4s"),
)
async def live_file(request: Request, playback_id: str, session_id: str, name: str) -> Response:
    return await _serve(request, playback_id, session_id, name, recording=False)


@router.head(_RECORDING_FILE, include_in_schema=False)
@router.get(
    _RECORDING_FILE,
    summary="Recording files",
    response_class=Response,
    responses=_served("vod.m3u8, a segment, or recording.mp4", *MIME_TYPES),
)
async def recording_file(
    request: Request, playback_id: str, session_id: str, name: str
) -> Response:
    """``vod.m3u8`` (all segments), the segments themselves, and ``recording.mp4``."""
    return await _serve(request, playback_id, session_id, name, recording=True)


@router.head(_LIVE_RENDITION_FILE, include_in_schema=False)
@router.get(
    _LIVE_RENDITION_FILE,
    summary="A rendition's live playlist or segment",
    response_class=Response,
    responses=_served("A playlist or a segment of the rendition", "m3u8", "ts", "m4s"),
)
async def live_rendition_file(
    request: Request, playback_id: str, session_id: str, rendition: str, name: str
) -> Response:
    return await _serve(
        request, playback_id, session_id, name, recording=False, rendition=rendition
    )


@router.head(_RECORDING_RENDITION_FILE, include_in_schema=False)
@router.get(
    _RECORDING_RENDITION_FILE,
    summary="A rendition's recording files",
    response_class=Response,
    responses=_served("The rendition's vod.m3u8 or a segment", "m3u8", "ts", "m4s"),
)
async def recording_rendition_file(
    request: Request, playback_id: str, session_id: str, rendition: str, name: str
) -> Response:
    return await _serve(request, playback_id, session_id, name, recording=True, rendition=rendition)


async def _serve(
    request: Request,
    playback_id: str,
    session_id: str,
    name: str,
    *,
    recording: bool,
    rendition: str | None = None,
) -> Response:
    playback = _playback(request)
    found = await playback.session_file(
        playback_id, session_id, name, recording=recording, rendition=rendition
    )
    if found is None:
        raise _not_found("recording" if recording else "stream or segment")
    path, session = found
    kind = name.rsplit(".", 1)[1]
    if kind == "m3u8":
        # A playlist changes with every segment until its session ends.
        cache = _IMMUTABLE if session.status == "ended" else _PLAYLIST_CACHE
        return FileResponse(path, media_type=MIME_TYPES[kind], headers={"Cache-Control": cache})
    if kind in ("ts", "m4s") and request.method == "GET":
        await playback.count_view(session_id, name, None if rendition is None else path.parent)
    return FileResponse(path, media_type=MIME_TYPES[kind], headers={"Cache-Control": _IMMUTABLE})
