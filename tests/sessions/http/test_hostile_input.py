"""Inputs that used to reach SQLite or the time formatting and come back as 500s: each is
now a 4xx with the error envelope. (The generated cases of the conformance test cover the
rest; these are the ones found by hand, kept so they stay fixed.)"""

from __future__ import annotations

import pytest

from storage.base import MAX_OFFSET
from tests.sessions.http.conftest import AUTH, Api

HUGE_OFFSET = "9223372036854775808"  # 2**63: one past SQLite's largest integer


def _assert_error(status: int, response_status: int, body: dict[str, object]) -> None:
    assert response_status == status, body
    error = body["error"]
    assert isinstance(error, dict) and error["code"] and error["message"]


@pytest.mark.parametrize("offset", [HUGE_OFFSET, "9" * 40])
@pytest.mark.parametrize("path", ["/api/sessions", "/api/streams", "/api/streams/one/sessions"])
async def test_an_offset_past_sqlites_integers_is_400(api: Api, path: str, offset: str) -> None:
    await api.streams.create("one")
    response = await api.get(path, offset=offset)
    _assert_error(400, response.status_code, response.json())
    assert response.json()["error"]["code"] == "invalid_parameter"


async def test_the_largest_offset_is_an_empty_page(api: Api) -> None:
    await api.streams.create("one")
    for path in ("/api/sessions", "/api/streams", "/api/streams/one/sessions"):
        response = await api.get(path, offset=MAX_OFFSET, limit=1000)
        assert response.status_code == 200, response.text
        assert response.json()["items"] == []


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("value", ["1e308", "9" * 30, "9" * 400, "-1e300", "inf"])
async def test_times_beyond_the_calendar_are_400(api: Api, param: str, value: str) -> None:
    for path in ("/api/analytics", "/api/sessions"):
        response = await api.get(path, **{param: value})
        _assert_error(400, response.status_code, response.json())


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "\\ud800"}',  # a lone surrogate: valid JSON, not text SQLite can store
        b'{"name": "ok\\udfff"}',
    ],
)
async def test_a_name_that_is_not_unicode_text_is_422(api: Api, body: bytes) -> None:
    created = await api.streams.create("existing")
    headers = {**AUTH, "Content-Type": "application/json"}
    for method, url in [("POST", "/api/streams"), ("PATCH", f"/api/streams/{created[0].id}")]:
        response = await api.client.request(method, url, content=body, headers=headers)
        _assert_error(422, response.status_code, response.json())
        assert "surrogate" in response.json()["error"]["message"]
    assert (await api.store.list_streams())[1] == 1


async def test_a_body_that_is_not_utf8_is_422(api: Api) -> None:
    response = await api.client.post(
        "/api/streams",
        content=b'{"name": "\xff\xfe"}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    _assert_error(422, response.status_code, response.json())
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/streams", "GET, POST"),
        ("OPTIONS", "/api/streams", "GET, POST"),
        ("POST", "/api/streams/x", "GET, PATCH, DELETE"),
        ("DELETE", "/api/sessions/x/kick", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
async def test_405_lists_every_method_the_path_answers(
    api: Api, method: str, path: str, allow: str
) -> None:
    response = await api.client.request(method, path, headers=AUTH)
    _assert_error(405, response.status_code, response.json())
    assert response.headers["allow"] == allow
