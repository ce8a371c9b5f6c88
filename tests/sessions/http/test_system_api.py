"""Health, auth, status, the error envelope and the OpenAPI document."""

from __future__ import annotations

import pytest

from ingest.config import Config
from sessions.http import create_app
from tests.sessions.http.conftest import AUTH, TOKEN, Api, FakeLive, session_record


async def test_healthz_is_503_until_ready_then_200_without_a_token(api: Api) -> None:
    api.ready[0] = False
    response = await api.client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "starting"}
    api.ready[0] = True
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
)
@pytest.mark.parametrize("path", ["/api/status", "/api/streams", "/api/sessions", "/openapi.json"])
async def test_missing_or_wrong_token_is_401_with_a_challenge(
    api: Api, headers: dict[str, str], path: str
) -> None:
    response = await api.client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


async def test_a_wrong_token_cannot_change_anything(api: Api) -> None:
    response = await api.client.post("/api/streams", json={"name": "x"})
    assert response.status_code == 401
    assert (await api.store.list_streams())[1] == 0


def test_an_empty_admin_token_is_refused(api: Api) -> None:
    with pytest.raises(ValueError):
        create_app(
            store=api.store,
            streams=api.streams,
            live=FakeLive(),
            config=Config(),
            admin_token="",
            is_ready=lambda: True,
        )


async def test_status_reports_version_uptime_and_live_sessions(api: Api) -> None:
    stream, _ = await api.streams.create("one")
    api.live.sessions["s1"] = session_record(stream.id, "s1", ingest_rate=1500.5)
    response = await api.get("/api/status")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "version": body["version"],
        "uptime_seconds": 100.0,
        "live_sessions": 1,
        "ingest_rate": 1500.5,
        "loop_lag_ms": None,
        "segment_availability_ms": None,
        "processes": [],
        "store": None,
    }
    assert isinstance(body["version"], str) and body["version"]


async def test_unknown_paths_and_methods_get_the_error_envelope(api: Api) -> None:
    response = await api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = await api.client.put("/api/streams", headers=AUTH)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_unexpected_errors_are_a_500_envelope_without_a_traceback(api: Api) -> None:
    async def broken(**_: object) -> None:
        raise RuntimeError("database on fire at /secret/path")

    api.store.analytics = broken  # type: ignore[assignment,method-assign]
    response = await api.get("/api/analytics")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }
    assert "Traceback" not in response.text and "on fire" not in response.text


async def test_openapi_lists_every_path_with_the_bearer_scheme(api: Api) -> None:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "rtmp-ingest"
    assert document["info"]["description"]
    paths = set(document["paths"])
    assert {
        "/healthz",
        "/api/status",
        "/api/streams",
        "/api/streams/{stream_ref}",
        "/api/streams/{stream_ref}/rotate-key",
        "/api/streams/{stream_ref}/disable",
        "/api/streams/{stream_ref}/enable",
        "/api/streams/{stream_ref}/sessions",
        "/api/streams/{stream_ref}/sessions/active",
        "/api/sessions",
        "/api/sessions/{session_id}",
        "/api/sessions/{session_id}/kick",
        "/api/analytics",
    } <= paths
    assert "AdminToken" in document["components"]["securitySchemes"]
    schemas = document["components"]["schemas"]
    assert "stream_key" in schemas["StreamWithKey"]["properties"]
    assert "stream_key" not in schemas["Stream"]["properties"]
    assert "playback_id" in schemas["Session"]["properties"]


async def test_interactive_docs_are_not_served(api: Api) -> None:
    assert (await api.client.get("/docs")).status_code == 401
    assert (await api.get("/docs")).status_code == 404
