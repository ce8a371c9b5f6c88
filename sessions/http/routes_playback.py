"""HLS and recording playback for viewers: no token, addressed by ``playback_id``.

Playlists are short-lived in caches (their content changes every segment), segments and
recordings are immutable; every response allows any origin so browser players (hls.js)
can fetch it; MP4 recordings answer range requests.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from sessions.http.errors import ApiError
from sessions.playback import MIME_TYPES, Playback

router = APIRouter(tags=["playback"])

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges",
}
_PLAYLIST_CACHE = "max-age=1, must-revalidate"
_IMMUTABLE = "public, max-age=31536000, immutable"


def _playback(request: Request) -> Playback:
    playback = request.app.state.playback
    assert isinstance(playback, Playback)
    return playback


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


@router.options("/hls/{path:path}", include_in_schema=False)
@router.options("/recordings/{path:path}", include_in_schema=False)
async def preflight(path: str) -> Response:
    return Response(
        status_code=204,
        headers={
            **_CORS,
            "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
            "Access-Control-Allow-Headers": "Range",
            "Access-Control-Max-Age": "86400",
        },
    )


@router.get("/hls/{playback_id}/index.m3u8", summary="Live playlist of a stream")
async def live_playlist(request: Request, playback_id: str) -> Response:
    text = await _playback(request).live_playlist(playback_id)
    if text is None:
        raise _not_found("live stream")
    return Response(
        text,
        media_type=MIME_TYPES["m3u8"],
        headers={**_CORS, "Cache-Control": _PLAYLIST_CACHE},
    )


@router.get("/hls/{playback_id}/{session_id}/{name}", summary="Live playlist or segment")
async def live_file(request: Request, playback_id: str, session_id: str, name: str) -> Response:
    return await _serve(request, playback_id, session_id, name, recording=False)


@router.get("/recordings/{playback_id}/{session_id}/{name}", summary="Recording files")
async def recording_file(
    request: Request, playback_id: str, session_id: str, name: str
) -> Response:
    """``vod.m3u8`` (all segments), the segments themselves, and ``recording.mp4``."""
    return await _serve(request, playback_id, session_id, name, recording=True)


async def _serve(
    request: Request, playback_id: str, session_id: str, name: str, *, recording: bool
) -> Response:
    playback = _playback(request)
    found = await playback.session_file(playback_id, session_id, name, recording=recording)
    if found is None:
        raise _not_found("recording" if recording else "stream or segment")
    path, session = found
    kind = name.rsplit(".", 1)[1]
    if kind == "m3u8":
        # A playlist changes with every segment until its session ends.
        cache = _IMMUTABLE if session.status == "ended" else _PLAYLIST_CACHE
        return FileResponse(
            path, media_type=MIME_TYPES[kind], headers={**_CORS, "Cache-Control": cache}
        )
    if kind in ("ts", "m4s"):
        await playback.count_view(session_id, name)
    return FileResponse(
        path, media_type=MIME_TYPES[kind], headers={**_CORS, "Cache-Control": _IMMUTABLE}
    )
