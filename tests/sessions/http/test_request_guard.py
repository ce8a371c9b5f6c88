"""The request guard in front of the routes: the token is checked before any of the body is
read, and bodies are limited to 1 MiB (by their Content-Length at once, or as a chunked body
streams). The answers come over real sockets, so the tests can show that the server answered
before the client had sent the body at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessions.http.guard import MAX_BODY_BYTES
from tests.sessions.http.conftest import AUTH, TOKEN, Api
from tests.sessions.http.served import closed_by_server, connection, read_response, serve_api

FIFTY_MB = 50 * 1000 * 1000


def _create_head(*headers: str, token: bool = True) -> bytes:
    """The head of a ``POST /api/streams`` with a JSON body, *headers* added."""
    auth = [f"Authorization: Bearer {TOKEN}"] if token else []
    lines = [
        "POST /api/streams HTTP/1.1",
        "Host: api.test",
        "Content-Type: application/json",
        *auth,
        *headers,
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


async def test_invalid_json_without_a_token_is_401_not_422(api: Api) -> None:
    response = await api.client.post(
        "/api/streams", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert (await api.store.list_streams())[1] == 0


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}"])
async def test_a_50_mb_body_without_the_token_is_refused_before_it_is_sent(
    tmp_path: Path, authorization: str | None
) -> None:
    async with serve_api(tmp_path) as served, connection(served) as (reader, writer):
        extra = [f"Authorization: {authorization}"] if authorization else []
        writer.write(_create_head(f"Content-Length: {FIFTY_MB}", *extra, token=False))
        await writer.drain()
        # Not one byte of the body has been sent: the answer cannot depend on it.
        response = await read_response(reader)
        assert response.status == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["connection"] == "close"
        assert json.loads(response.body)["error"]["code"] == "unauthorized"
        # And the server does not wait for the body either: it closes the connection.
        assert await closed_by_server(reader)
        assert (await served.store.list_streams())[1] == 0


async def test_a_body_over_1_mib_is_413_from_its_content_length(tmp_path: Path) -> None:
    async with serve_api(tmp_path) as served, connection(served) as (reader, writer):
        writer.write(_create_head(f"Content-Length: {2 * MAX_BODY_BYTES}"))
        await writer.drain()
        response = await read_response(reader)
        assert response.status == 413
        assert json.loads(response.body) == {
            "error": {
                "code": "too_large",
                "message": f"the request body is larger than {MAX_BODY_BYTES} bytes",
            }
        }
        assert await closed_by_server(reader)


async def test_a_chunked_body_is_cut_at_1_mib(tmp_path: Path) -> None:
    async with serve_api(tmp_path) as served, connection(served) as (reader, writer):
        writer.write(_create_head("Transfer-Encoding: chunked"))
        chunk = b" " * 65536
        # A little over the limit, and no last chunk: a server that did not count would
        # wait for the rest of the body.
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        response = await read_response(reader)
        assert response.status == 413
        assert json.loads(response.body)["error"]["code"] == "too_large"
        assert response.headers["connection"] == "close"


async def test_bodies_within_the_limit_are_read(tmp_path: Path) -> None:
    async with serve_api(tmp_path) as served, connection(served) as (reader, writer):
        body = json.dumps({"name": "studio"}).encode().ljust(MAX_BODY_BYTES, b" ")
        writer.write(_create_head(f"Content-Length: {len(body)}") + body)
        await writer.drain()
        response = await read_response(reader)
        assert response.status == 201, response.body
        assert json.loads(response.body)["name"] == "studio"


async def test_open_routes_need_no_token_and_are_not_closed(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert "connection" not in response.headers
    assert (await api.client.get("/api/status", headers=AUTH)).status_code == 200
