"""The front door of the HTTP API: what every request passes before a route sees it.

An ASGI middleware, in front of the routes, that

- checks the admin bearer token (constant-time compare) before anything of the request
  body is read: a request without the right token is answered 401 at once, and the
  connection is closed rather than drained of a body nobody will read;
- limits request bodies to :data:`MAX_BODY_BYTES`: a ``Content-Length`` over it is
  answered 413 at once; a chunked body is counted as it streams and cut at the limit;
- gives every answer on the viewers' playback routes (errors included) the CORS headers
  browser players need, so a player sees "404 not live" rather than a CORS failure;
- lets the operator console's page and static files through without a token (they hold
  no data: the page sends the token the operator signs in with to the API).

:func:`is_open` says which paths need no token; the OpenAPI document is built from the
same rule (:mod:`sessions.http.openapi`).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessions.http.errors import error_response

#: Largest request body accepted, bytes.
MAX_BODY_BYTES: Final = 1024 * 1024

#: Paths anyone may fetch (no token).
OPEN_PATHS: Final = frozenset({"/healthz"})
#: The Prometheus metrics: behind the token unless ``[http] metrics_public`` is on.
METRICS_PATH: Final = "/metrics"
#: Prefixes of the viewers' playback routes (no token, CORS on every answer).
PLAYBACK_PREFIXES: Final = ("/hls/", "/recordings/")
#: The operator console: its page is ``/``, its static files are under this prefix.
CONSOLE_PAGE: Final = "/"
CONSOLE_PREFIX: Final = "/console/"

#: CORS headers on every playback answer.
PLAYBACK_CORS: Final[Mapping[str, str]] = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges",
}

_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}
#: Answers sent before the body was read close the connection: the rest of the body is
#: never read, neither by the app nor by the server draining it for the next request.
_CLOSE: Final = {"Connection": "close"}
_RAW_CORS: Final = [(k.lower().encode(), v.encode()) for k, v in PLAYBACK_CORS.items()]


def is_playback(path: str) -> bool:
    return path.startswith(PLAYBACK_PREFIXES)


def is_console(path: str) -> bool:
    return path == CONSOLE_PAGE or path.startswith(CONSOLE_PREFIX)


def is_open(path: str) -> bool:
    """Whether *path* (a request's, or a route's template) is served without a token."""
    return path in OPEN_PATHS or is_playback(path) or is_console(path)


def body_too_large() -> HTTPException:
    return HTTPException(
        413, f"the request body is larger than {MAX_BODY_BYTES} bytes", headers=_CLOSE
    )


class RequestGuard:
    """The ASGI middleware (``create_app`` refuses an empty *admin_token*)."""

    def __init__(
        self, app: ASGIApp, *, admin_token: str, public: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self._expected = admin_token.encode("utf-8")
        #: More paths served without the token (``/metrics`` when it is public).
        self._public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if is_playback(path):
            send = _with_cors(send)
        headers = _headers(scope)
        if not is_open(path) and path not in self._public:
            problem = self._token_problem(headers.get(b"authorization"))
            if problem is not None:
                response = error_response(401, "unauthorized", problem, {**_CHALLENGE, **_CLOSE})
                await response(scope, receive, send)
                return
        length = headers.get(b"content-length")
        # h11 has already refused a Content-Length that is not a number.
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            too_large = body_too_large()
            response = error_response(413, "too_large", too_large.detail, too_large.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, _limited(receive), send)

    def _token_problem(self, authorization: bytes | None) -> str | None:
        """Why the request may not pass, or None when it carries the admin token."""
        scheme, _, token = (authorization or b"").partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return "missing bearer token (Authorization: Bearer <token>)"
        if not hmac.compare_digest(token, self._expected):
            return "invalid bearer token"
        return None


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers (names are lower case in ASGI); the last of repeats wins."""
    return dict(scope["headers"])


def _limited(receive: Receive) -> Receive:
    """*receive*, raising 413 once the body read so far passes :data:`MAX_BODY_BYTES`."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise body_too_large()
        return message

    return receive_limited


def _with_cors(send: Send) -> Send:
    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in _RAW_CORS if k not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return send_with_cors
