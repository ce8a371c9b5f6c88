"""The operator console: its page at ``/`` and its static files under ``/console/``.

The files are package data (:mod:`sessions.http.console`), read once and kept in memory
(with a gzip copy of the text files): plain HTML, CSS and JavaScript modules, the vendored
hls.js and uPlot among them, and nothing to build. They hold no data, so they are served
without a token (:func:`sessions.http.guard.is_open`); the page asks the operator for the
admin token and sends it to the API, which is where the data comes from.

Every answer has a strong ``ETag`` and ``Cache-Control: no-cache``: a browser keeps the
files and revalidates them (304) on each load, so an upgraded server is never run with
stale scripts. The page carries a content security policy that lets it load only its own
files, talk only to its own origin and play media from there.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from fastapi import APIRouter, Request, Response

from sessions.http.errors import ApiError
from sessions.http.guard import CONSOLE_PREFIX

router = APIRouter(include_in_schema=False)

#: The console's page, served at ``/``.
INDEX: Final = "index.html"

#: What is served, by file suffix; other files of the package (its ``__init__.py``) are not.
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
#: Files smaller than this are not worth compressing.
_GZIP_FROM: Final = 1024
_COMPRESSIBLE: Final = frozenset({".html", ".css", ".js", ".mjs", ".svg", ".txt"})

#: The page may load only its own files, talk only to its own origin (the API and the
#: playback routes) and play media from there; hls.js runs its transmuxer in a worker it
#: makes from a blob, and feeds the video element through MediaSource (blob: URLs).
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_COMMON_HEADERS: Final = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, ready to send."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            found.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif _suffix(entry.name) in CONTENT_TYPES:
            found[prefix + entry.name] = entry
    return found


@functools.cache
def assets() -> dict[str, Asset]:
    """Every file of the console, by its path under ``/console/`` (``js/app.js``)."""
    loaded: dict[str, Asset] = {}
    for name, entry in _walk(resources.files("sessions.http.console")).items():
        body = entry.read_bytes()
        suffix = _suffix(name)
        gzipped = None
        if suffix in _COMPRESSIBLE and len(body) >= _GZIP_FROM:
            # mtime=0: the same bytes (and so the same ETag) on every start.
            gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        loaded[name] = Asset(body, gzipped, CONTENT_TYPES[suffix], etag)
    return loaded


def _not_modified(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    if wanted is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    return "*" in tags or etag in tags


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def _send(request: Request, name: str) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise ApiError(404, "not_found", "no such file")
    headers = {**_COMMON_HEADERS, "ETag": asset.etag}
    if asset.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if _not_modified(request, asset.etag):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and _accepts_gzip(request):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(len(body))
    if request.method == "HEAD":
        body = b""
    return Response(body, media_type=asset.content_type, headers=headers)


@router.head("/")
@router.get("/")
async def console_page(request: Request) -> Response:
    return _send(request, INDEX)


@router.head(CONSOLE_PREFIX + "{name:path}")
@router.get(CONSOLE_PREFIX + "{name:path}")
async def console_file(request: Request, name: str) -> Response:
    # Only the names found in the package are served: no path reaches anything else.
    return _send(request, name)
