"""The OpenAPI document: FastAPI's, with every answer the API gives declared.

The error answers that do not depend on the route are declared here, once, from the same
rules that produce them, rather than route by route:

- 401 and the ``AdminToken`` security requirement on every path that needs the token
  (:func:`sessions.http.guard.is_open`);
- 400 on every operation with query parameters (their checks are in ``deps``);
- 413 and 422 on every operation that takes a body (the size limit is the guard's);
- 503 on every operation behind the token: the database stayed locked (or its disk full)
  for longer than the store's busy timeout (:mod:`sessions.http.errors`);
- FastAPI's own 422 (its ``HTTPValidationError`` shape, which this API never sends) goes.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from sessions.http import schemas
from sessions.http.guard import MAX_BODY_BYTES, is_open

SECURITY_SCHEME: Final = "AdminToken"

_ERROR_REF: Final = {"$ref": "#/components/schemas/ErrorBody"}
_FASTAPI_ERRORS: Final = ("HTTPValidationError", "ValidationError")


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


_UNAUTHORIZED: Final = _error("Missing or wrong bearer token")
_BAD_PARAMETER: Final = _error("Bad query parameter")
_TOO_LARGE: Final = _error(f"The body is larger than {MAX_BODY_BYTES} bytes")
_BAD_BODY: Final = _error("The body is not the JSON object described")
_STORE_BUSY: Final = _error("The database is locked or full for now; try again")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document for *app*'s routes."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    models = components.setdefault("schemas", {})
    for name in _FASTAPI_ERRORS:
        models.pop(name, None)
    _, error_schemas = models_json_schema(
        [(schemas.ErrorBody, "serialization")], ref_template="#/components/schemas/{model}"
    )
    models.update(error_schemas.get("$defs", {}))
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "The admin token from the configuration (http.admin_token).",
        }
    }
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            _declare_errors(path, operation)
    return document


def _declare_errors(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    fastapi_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
    if fastapi_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]
    if not is_open(path):
        operation["security"] = [{SECURITY_SCHEME: []}]
        responses.setdefault("401", _UNAUTHORIZED)
        responses.setdefault("503", _STORE_BUSY)
    if any(p.get("in") == "query" for p in operation.get("parameters", [])):
        responses.setdefault("400", _BAD_PARAMETER)
    if "requestBody" in operation:
        responses.setdefault("413", _TOO_LARGE)
        responses.setdefault("422", _BAD_BODY)
