"""Streams over the API: create, list, change, rotate, disable, delete; the key shown once."""

from __future__ import annotations

import re
import socket
import sqlite3
from pathlib import Path

import pytest

from ingest.config import Config, HttpConfig, RtmpsConfig
from storage import Store
from tests.sessions.http.conftest import AUTH, INGEST_URL, Api, serve_store, session_record

_ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def _create(api: Api, name: str, **body: object) -> dict[str, object]:
    response = await api.post("/api/streams", {"name": name, **body})
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


async def test_ingest_urls_list_rtmps_when_it_is_on(tmp_path: Path) -> None:
    rtmps = RtmpsConfig(listen=":1936", cert_file="unused.crt", key_file="unused.key")
    tls_url = "rtmps://ingest.test:1936/live"
    configs = [
        (Config(http=HttpConfig(public_rtmp_url=INGEST_URL)), [INGEST_URL]),
        (
            Config(
                rtmps=rtmps,
                http=HttpConfig(public_rtmp_url=INGEST_URL, public_rtmps_url=tls_url),
            ),
            [INGEST_URL, tls_url],
        ),
        (
            Config(rtmps=rtmps, http=HttpConfig(public_rtmp_url=INGEST_URL)),
            [INGEST_URL, f"rtmps://{socket.gethostname()}:1936/live"],
        ),
    ]
    for index, (config, urls) in enumerate(configs):
        store = await Store.open(tmp_path / f"ledger{index}.db")
        async with serve_store(store, config) as api:
            created = await _create(api, "studio")
            assert created["ingest_url"] == INGEST_URL
            assert created["ingest_urls"] == urls
            listed = (await api.get("/api/streams")).json()["items"][0]
            assert listed["ingest_urls"] == urls


async def test_create_answers_with_the_key_once_and_never_again(api: Api) -> None:
    created = await _create(api, "studio", record=True)
    key = created["stream_key"]
    assert isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_-]{32}", key)
    assert created["name"] == "studio"
    assert created["record"] is True
    assert created["disabled"] is False
    assert created["status"] == "idle" and created["is_active"] is False
    assert created["ingest_url"] == INGEST_URL
    assert created["playback_url"] is None
    assert created["last_seen"] is None
    assert isinstance(created["created_at"], str) and _ISO_MS.match(created["created_at"])
    assert created["playback_id"] and key not in str(created["playback_id"])
    stream_id = created["id"]

    later = [
        await api.get(f"/api/streams/{stream_id}"),
        await api.get("/api/streams"),
        await api.patch(f"/api/streams/{stream_id}", {"record": False}),
        await api.post(f"/api/streams/{stream_id}/disable"),
        await api.post(f"/api/streams/{stream_id}/enable"),
        await api.get(f"/api/streams/{stream_id}/sessions"),
        await api.get("/openapi.json"),
    ]
    for response in later:
        assert response.status_code == 200
        assert key not in response.text
        assert "stream_key" not in response.text or response.request.url.path == "/openapi.json"


async def test_rotate_key_answers_with_a_new_key_that_authenticates(api: Api) -> None:
    created = await _create(api, "studio")
    old_key = str(created["stream_key"])
    response = await api.post(f"/api/streams/{created['id']}/rotate-key")
    assert response.status_code == 200
    new_key = response.json()["stream_key"]
    assert new_key != old_key and len(new_key) == 32
    assert await api.streams.authenticate(old_key) is None
    stream = await api.streams.authenticate(new_key)
    assert stream is not None and stream.id == created["id"]
    response = await api.get(f"/api/streams/{created['id']}")
    assert new_key not in response.text and "stream_key" not in response.json()


async def test_a_taken_name_is_409(api: Api) -> None:
    await _create(api, "studio")
    other = await _create(api, "other")
    response = await api.post("/api/streams", {"name": "studio"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "name_taken"
    response = await api.patch(f"/api/streams/{other['id']}", {"name": "studio"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "name_taken"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": 5},
        {"name": "ok", "record": "yes"},
        {"name": "ok", "extra": 1},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 201},
        {"name": "bad\nname"},
        [],
        None,
    ],
)
async def test_a_bad_create_body_is_422_with_the_envelope(api: Api, body: object) -> None:
    response = await api.post("/api/streams", body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert isinstance(error["message"], str) and error["message"]


async def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    response = await api.client.post(
        "/api/streams",
        content=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_patch_changes_only_what_is_given(api: Api) -> None:
    created = await _create(api, "studio")
    url = f"/api/streams/{created['id']}"
    response = await api.patch(url, {"name": "  renamed  "})
    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    assert response.json()["record"] is False
    response = await api.patch(url, {"record": True, "disabled": True})
    body = response.json()
    assert (body["name"], body["record"], body["disabled"]) == ("renamed", True, True)
    response = await api.patch(url, {})
    assert response.status_code == 200 and response.json()["disabled"] is True
    response = await api.patch(url, {"disabled": "no"})
    assert response.status_code == 422


async def test_disable_and_enable(api: Api) -> None:
    created = await _create(api, "studio")
    response = await api.post(f"/api/streams/{created['id']}/disable")
    assert response.status_code == 200 and response.json()["disabled"] is True
    stored = await api.store.get_stream(str(created["id"]))
    assert stored is not None and stored.disabled
    response = await api.post(f"/api/streams/{created['id']}/enable")
    assert response.status_code == 200 and response.json()["disabled"] is False


async def test_delete_is_204_then_404(api: Api) -> None:
    created = await _create(api, "studio")
    url = f"/api/streams/{created['id']}"
    response = await api.delete(url)
    assert response.status_code == 204 and response.content == b""
    response = await api.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (await api.delete(url)).status_code == 404


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate-key"),
        ("POST", "/disable"),
        ("POST", "/enable"),
        ("GET", "/sessions"),
        ("GET", "/sessions/active"),
    ],
)
async def test_an_unknown_stream_is_404_with_the_envelope(
    api: Api, method: str, suffix: str
) -> None:
    response = await api.client.request(
        method,
        f"/api/streams/no-such-stream{suffix}",
        headers=AUTH,
        json={} if method == "PATCH" else None,
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "no-such-stream" in response.json()["error"]["message"]


async def test_list_pages_and_reports_the_total(api: Api) -> None:
    for n in range(5):
        await _create(api, f"stream-{n}")
    response = await api.get("/api/streams", offset=1, limit=2)
    assert response.status_code == 200
    page = response.json()
    assert (page["total"], page["offset"], page["limit"]) == (5, 1, 2)
    assert [item["name"] for item in page["items"]] == ["stream-1", "stream-2"]
    page = (await api.get("/api/streams")).json()
    assert (page["total"], page["offset"], page["limit"], len(page["items"])) == (5, 0, 50, 5)
    page = (await api.get("/api/streams", offset=10)).json()
    assert page["items"] == [] and page["total"] == 5


@pytest.mark.parametrize(
    "params",
    [{"offset": -1}, {"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"offset": "1.5"}],
)
async def test_bad_paging_is_400(api: Api, params: dict[str, str | int]) -> None:
    for url in ("/api/streams", "/api/sessions"):
        response = await api.get(url, **params)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_parameter"


async def test_status_follows_the_live_sessions(api: Api) -> None:
    created = await _create(api, "studio")
    stream_id = str(created["id"])
    url = f"/api/streams/{stream_id}/sessions/active"
    response = await api.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_live"

    api.live.sessions["s1"] = session_record(stream_id, "s1", bytes_received=4096)
    body = (await api.get(f"/api/streams/{stream_id}")).json()
    assert body["status"] == "live" and body["is_active"] is True
    response = await api.get(url)
    assert response.status_code == 200
    session = response.json()
    assert session["id"] == "s1" and session["bytes_received"] == 4096
    assert session["playback_id"] == created["playback_id"]
    listed = (await api.get("/api/streams")).json()["items"][0]
    assert listed["status"] == "live"


async def test_a_stream_is_addressed_by_its_name_everywhere(api: Api) -> None:
    """What the command line takes (REF) the API takes too."""
    created = await _create(api, "default")
    stream_id = str(created["id"])
    await api.store.insert_session(session_record(stream_id, "s1"))
    response = await api.get("/api/streams/default")
    assert response.status_code == 200 and response.json()["id"] == stream_id
    sessions = (await api.get("/api/streams/default/sessions")).json()
    assert [s["id"] for s in sessions["items"]] == ["s1"]
    assert (await api.get("/api/streams/default/sessions/active")).json()["error"][
        "code"
    ] == "not_live"
    api.live.sessions["s2"] = session_record(stream_id, "s2")
    assert (await api.get("/api/streams/default/sessions/active")).json()["id"] == "s2"
    assert (await api.post("/api/streams/default/disable")).json()["disabled"] is True
    assert (await api.post("/api/streams/default/enable")).json()["disabled"] is False
    rotated = await api.post("/api/streams/default/rotate-key")
    assert rotated.status_code == 200 and rotated.json()["id"] == stream_id
    renamed = await api.patch("/api/streams/default", {"name": "studio"})
    assert renamed.status_code == 200 and renamed.json()["id"] == stream_id
    assert (await api.get("/api/streams/default")).status_code == 404
    assert (await api.delete("/api/streams/studio")).status_code == 204
    assert (await api.get(f"/api/streams/{stream_id}")).status_code == 404


async def test_an_id_wins_over_a_name_equal_to_it(api: Api) -> None:
    first = await _create(api, "first")
    # A second stream named after the first one's id.
    await _create(api, str(first["id"]))
    response = await api.get(f"/api/streams/{first['id']}")
    assert response.json()["name"] == "first"


async def test_the_stream_filters_take_a_name(api: Api) -> None:
    created = await _create(api, "default")
    other = await _create(api, "other")
    await api.store.insert_session(session_record(str(created["id"]), "s1"))
    await api.store.insert_session(session_record(str(other["id"]), "s2"))
    page = (await api.get("/api/sessions", stream_id="default")).json()
    assert [s["id"] for s in page["items"]] == ["s1"]
    assert (await api.get("/api/analytics", stream_id="default")).json()["count"] == 1
    assert (await api.get("/api/analytics", stream_id="nothing")).json()["count"] == 0
    # A deleted stream's sessions are still found by its id.
    assert (await api.delete("/api/streams/other")).status_code == 204
    page = (await api.get("/api/sessions", stream_id=str(other["id"]))).json()
    assert [s["id"] for s in page["items"]] == ["s2"]


async def test_a_locked_database_is_503_with_retry_after(tmp_path: Path) -> None:
    """The store stayed locked past its busy timeout: the operator is told to try again
    (503, ``Retry-After``), not shown a 500, and the same request works once it clears."""
    store = await Store.open(tmp_path / "ledger.db", busy_timeout=0.05)
    async with serve_store(store) as api:
        holder = sqlite3.connect(store.path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            r = await api.post("/api/streams", json={"name": "studio"})
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "store_unavailable"
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        r = await api.post("/api/streams", json={"name": "studio"})
        assert r.status_code == 201


_LADDER = [
    {"name": "360p", "width": 640, "height": 360, "bitrate": 800_000, "fps": 0, "gop": None},
    {"name": "240p", "width": 426, "height": 240, "bitrate": 400_000, "fps": 15, "gop": 2.0},
]


async def test_profiles_are_set_at_create_and_by_patch_and_shown(api: Api) -> None:
    plain = await _create(api, "plain")
    assert plain["profiles"] == []
    created = await _create(
        api, "ladder", profiles=[{k: v for k, v in p.items() if v is not None} for p in _LADDER]
    )
    assert created["profiles"] == _LADDER
    url = f"/api/streams/{created['id']}"
    assert (await api.get(url)).json()["profiles"] == _LADDER
    # Other changes keep them; a new list replaces them; [] removes them.
    response = await api.patch(url, {"record": True})
    assert response.json()["profiles"] == _LADDER
    response = await api.patch(url, {"profiles": _LADDER[1:]})
    assert response.status_code == 200 and response.json()["profiles"] == _LADDER[1:]
    assert (await api.get("/api/streams")).json()["items"][1]["profiles"] == _LADDER[1:]
    response = await api.patch(url, {"profiles": []})
    assert response.json()["profiles"] == []
    stored = await api.streams.resolve("ladder")
    assert stored is not None and stored.profiles == []


@pytest.mark.parametrize(
    ("profiles", "message"),
    [
        ([{**_LADDER[0], "width": 641}], "profiles[0] (360p): width and height must be even"),
        ([{**_LADDER[0], "bitrate": 1}], "profiles[0] (360p): bitrate must be 50000..50000000"),
        ([{**_LADDER[0], "name": f"p{i}"} for i in range(7)], "at most 6 profiles, got 7"),
        ([{**_LADDER[0], "name": "a/b"}], "name must be 1-32 letters"),
        ([{**_LADDER[0], "gop": 0}], "gop must be > 0"),
        ([{**_LADDER[0], "width": "640"}], "profiles.0.width"),
        ([{**_LADDER[0], "depth": 8}], "profiles.0.depth"),
    ],
)
async def test_bad_profiles_are_422_and_change_nothing(
    api: Api, profiles: list[dict[str, object]], message: str
) -> None:
    response = await api.post("/api/streams", {"name": "studio", "profiles": profiles})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert message in response.json()["error"]["message"]
    assert await api.streams.resolve("studio") is None
    created = await _create(api, "studio", profiles=_LADDER[:1])
    url = f"/api/streams/{created['id']}"
    response = await api.patch(url, {"name": "renamed", "profiles": profiles})
    assert response.status_code == 422 and message in response.json()["error"]["message"]
    body = (await api.get(url)).json()
    assert (body["name"], body["profiles"]) == ("studio", _LADDER[:1])


async def test_an_integral_number_is_an_integer(api: Api) -> None:
    """JSON does not tell 640 from 640.0 (nor does the document's "integer")."""
    given = {**_LADDER[0], "width": 640.0, "bitrate": 8e5}
    created = await _create(api, "studio", profiles=[given])
    assert created["profiles"] == _LADDER[:1]
    response = await api.post("/api/streams", {"name": "b", "profiles": [{**given, "fps": 0.5}]})
    assert response.status_code == 422


async def test_two_profiles_of_one_name_are_409(api: Api) -> None:
    """Names are unique among a stream's profiles (a rule the document cannot state as a
    schema): answered like a taken stream name."""
    twice = [_LADDER[0], {**_LADDER[1], "name": "360P"}]
    response = await api.post("/api/streams", {"name": "studio", "profiles": twice})
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "profile_name_taken",
        "message": "profile names must be unique: '360p' and '360P'",
    }
    created = await _create(api, "studio")
    response = await api.patch(f"/api/streams/{created['id']}", {"profiles": twice})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "profile_name_taken"
    assert (await api.get(f"/api/streams/{created['id']}")).json()["profiles"] == []


async def test_the_document_states_the_profile_rules(api: Api) -> None:
    document = (await api.get("/openapi.json")).json()
    profile = document["components"]["schemas"]["RenditionProfile"]["properties"]
    assert profile["width"]["multipleOf"] == 2 and profile["height"]["multipleOf"] == 2
    assert (profile["bitrate"]["minimum"], profile["bitrate"]["maximum"]) == (50_000, 50_000_000)
    create = document["components"]["schemas"]["StreamCreate"]["properties"]["profiles"]
    assert create["maxItems"] == 6
