"""Every error as ``{"error": {"code": ..., "message": ...}}``, with the right status.

Handlers cover errors raised by the routes (:class:`ApiError`), FastAPI's request
validation (400 for query and path parameters, 422 for bodies, a body that is not UTF-8
included), Starlette's own 404/405 (a 405 lists in ``Allow`` every method the path
answers), a store that stayed locked or full past its busy timeout (503 with
``Retry-After``: the operator's request, unlike the server's own writes, is not queued, so
the client is told to try again), and anything unexpected (500, with no traceback in the
body).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from ingest.logs import log_event
from storage import retryable

logger = logging.getLogger("sessions.http")

ExceptionHandler = Callable[[Request, Exception], Awaitable[JSONResponse]]

#: Codes for the statuses Starlette raises on its own (unknown path, wrong method, ...).
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}


#: Where FastAPI says a problem is; left out of messages ("limit: ...", not "query.limit: ...").
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


class ApiError(Exception):
    """An error answer: HTTP *status*, a stable *code* and a readable *message*."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {what} with id {ident!r}")


def bad_parameter(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The body of every error answer."""
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=dict(headers or {}))


def _describe(error: Mapping[str, Any]) -> str:
    """One validation problem as "where: what", e.g. "name: Field required"."""
    if error.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    loc = list(error.get("loc", ()))
    if loc == ["body"] and error.get("type") == "missing":
        return "a JSON object body is required"
    if loc and loc[0] in _LOCATIONS:
        loc = loc[1:]
    where = ".".join(str(part) for part in loc)
    message = str(error.get("msg", "invalid value"))
    return f"{where}: {message}" if where else message


def validation_message(errors: Sequence[Any]) -> str:
    problems = [_describe(e) for e in errors if isinstance(e, Mapping)]
    return "; ".join(problems) or "invalid request"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    in_body = any(
        isinstance(e, Mapping) and tuple(e.get("loc", ()))[:1] == ("body",) for e in errors
    )
    message = validation_message(errors)
    if in_body:
        return error_response(422, "invalid_request", message)
    return error_response(400, "invalid_parameter", message)


#: The order methods are listed in ``Allow``.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Iterable[BaseRoute], path: str) -> str:
    """Every method one of *routes* answers at *path*, for ``Allow``."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    known = [m for m in _METHOD_ORDER if m in methods]
    return ", ".join(known + sorted(methods - set(known)))


def _http_error(routes: Sequence[BaseRoute]) -> ExceptionHandler:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        headers = dict(exc.headers or {})
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if status == 400 and isinstance(exc.__cause__, ValueError):
            # FastAPI's answer to a body it could not decode (not UTF-8): a body error,
            # like invalid JSON.
            status, message = 422, "the request body is not valid JSON (UTF-8)"
        if status == 405:
            # Starlette names only the methods of the first route that matched the path.
            headers["Allow"] = allowed_methods(routes, request.url.path)
        return error_response(status, _STATUS_CODES.get(status, "error"), message, headers)

    return http_error


#: Seconds a client is asked to wait before it tries a request the store refused again.
STORE_RETRY_AFTER = 1


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    if retryable(exc):
        log_event(
            logger,
            logging.WARNING,
            "http_store_unavailable",
            method=request.method,
            path=request.url.path,
            error=str(exc),
        )
        return error_response(
            503,
            "store_unavailable",
            f"the database cannot be used for now ({exc}); try again",
            {"Retry-After": str(STORE_RETRY_AFTER)},
        )
    log_event(
        logger,
        logging.ERROR,
        "http_error",
        method=request.method,
        path=request.url.path,
        error=type(exc).__name__,
        exc_info=exc,
    )
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """The handlers; *routes* are every route of *app* (for ``Allow``)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error(routes))
    app.add_exception_handler(Exception, _unexpected_error)
