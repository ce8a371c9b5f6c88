"""The operators' HTTP API as an ASGI app: :func:`create_app` wires the routes to the store,
the streams service and the live-session manager."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from ingest import __version__
from ingest.config import Config
from sessions.http import (
    routes_console,
    routes_metrics,
    routes_playback,
    routes_sessions,
    routes_streams,
    routes_targets,
    schemas,
)
from sessions.http.deps import ApiContext, Context, LiveSessions
from sessions.http.errors import install_error_handlers
from sessions.http.guard import MAX_BODY_BYTES, METRICS_PATH, RequestGuard
from sessions.http.openapi import build_openapi
from sessions.http.timefmt import round_seconds
from sessions.http.views import ingest_url, ingest_urls
from sessions.playback import Playback
from sessions.streams import Streams
from sessions.targets import Targets
from sessions.writes import WriteHealth
from storage import Store

_DESCRIPTION = f"""\
Manage the streams publishers push to, and read the ledger of their publish sessions.

Every endpoint but `/healthz`, the viewers' playback routes and the operator console's
page (`/`) and files needs
`Authorization: Bearer <admin token>`. Errors are `{{"error": {{"code": ..., "message": ...}}}}`.
Times are ISO 8601 UTC with milliseconds; durations are seconds. Lists take `offset` and
`limit` and report the `total`. A stream is addressed by its id or its name. Request bodies
are limited to {MAX_BODY_BYTES} bytes.
"""


Percentiles = Callable[[], dict[str, float] | None]
Processes = Callable[[], list[dict[str, Any]]]
StoreHealthCheck = Callable[[], WriteHealth]


def _system_routes(
    is_ready: Callable[[], bool],
    loop_lag: Percentiles | None,
    availability: Percentiles | None,
    processes: Processes | None,
    store_health: StoreHealthCheck | None,
    document: dict[str, Any],
) -> APIRouter:
    """/healthz (open), /api/status and /openapi.json (*document*, filled in later)."""
    router = APIRouter(tags=["system"])

    @router.head("/healthz", include_in_schema=False)
    @router.get(
        "/healthz",
        summary="Liveness and readiness",
        description='200 {"status": "ok"} once the server is ready, 503 before. While '
        "writes to the database keep failing (locked, disk full) and are retried, still 200 "
        '(ingest goes on) but {"status": "degraded"}, with the pending writes under '
        '"store". No token.',
        response_model=schemas.Health,
        responses={503: {"model": schemas.Health, "description": "Still starting"}},
    )
    async def healthz() -> JSONResponse:
        if not is_ready():
            return JSONResponse({"status": "starting"}, status_code=503)
        if store_health is None:
            return JSONResponse({"status": "ok"})
        health = store_health()
        return JSONResponse({"status": health.status, "store": health.to_dict()})

    @router.get("/api/status", summary="Server status")
    async def status(context: Context) -> schemas.ServerStatus:
        lag = loop_lag() if loop_lag is not None else None
        available = availability() if availability is not None else None
        return schemas.ServerStatus(
            version=context.version,
            uptime_seconds=round_seconds(max(0.0, context.clock() - context.live.started_at)),
            live_sessions=len(context.live.live_sessions()),
            ingest_rate=round_seconds(context.live.total_ingest_rate()),
            loop_lag_ms=schemas.LoopLag(**lag) if lag is not None else None,
            segment_availability_ms=(
                schemas.LoopLag(**available) if available is not None else None
            ),
            processes=[schemas.ProcessStatus(**p) for p in processes()] if processes else [],
            store=schemas.StoreHealth(**store_health().to_dict()) if store_health else None,
        )

    @router.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return document

    return router


def create_app(
    *,
    store: Store,
    streams: Streams,
    live: LiveSessions,
    config: Config,
    admin_token: str,
    is_ready: Callable[[], bool],
    clock: Callable[[], float] = time.time,
    playback: Playback | None = None,
    playback_base: str | None = None,
    loop_lag: Percentiles | None = None,
    segment_availability: Percentiles | None = None,
    processes: Processes | None = None,
    store_health: StoreHealthCheck | None = None,
    metrics: routes_metrics.MetricsSource | None = None,
    metrics_public: bool = False,
) -> FastAPI:
    """The API app. *admin_token* must not be empty; *is_ready* and *store_health* drive
    ``/healthz``; with *playback*, viewers' HLS and recording routes are served too (no
    token). The operator console is at ``/``. With *metrics*, ``/metrics`` serves them
    (without the token with *metrics_public*)."""
    if not admin_token:
        raise ValueError("the admin token must not be empty")
    app = FastAPI(
        title="rtmp-ingest",
        summary="Operators' API of a self-hosted RTMP ingest server.",
        description=_DESCRIPTION,
        version=__version__,
        openapi_url=None,  # served below, behind the token
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = ApiContext(
        store=store,
        streams=streams,
        live=live,
        config=config,
        ingest_url=ingest_url(config),
        version=__version__,
        ingest_urls=ingest_urls(config),
        targets=Targets(store, clock=streams.clock),
        clock=clock,
        playback_base=playback_base if playback is not None else None,
    )
    document: dict[str, Any] = {}
    system = _system_routes(
        is_ready, loop_lag, segment_availability, processes, store_health, document
    )
    routers = [
        system,
        routes_streams.router,
        routes_targets.router,
        routes_sessions.router,
        routes_console.router,
    ]
    if playback is not None:
        app.state.playback = playback
        routers.append(routes_playback.router)
    if metrics is not None:
        routers.append(routes_metrics.metrics_router(metrics))
    for router in routers:
        app.include_router(router)
    install_error_handlers(app, [route for router in routers for route in router.routes])
    public = frozenset({METRICS_PATH}) if metrics is not None and metrics_public else frozenset()
    app.add_middleware(RequestGuard, admin_token=admin_token, public=public)
    document.update(build_openapi(app))
    return app
