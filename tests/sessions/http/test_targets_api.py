"""A stream's multistream targets over the API: the key of a target's URL is taken once
and never shown again."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.rtmp.url import URL_PATTERN, parse_rtmp_url
from tests.sessions.http.conftest import Api

YOUTUBE = "rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop"
FACEBOOK = "rtmps://live-api-s.facebook.com:443/rtmp/FB-1234?s_bl=1&s_sw=0"


async def _stream(api: Api, name: str = "studio") -> str:
    response = await api.post("/api/streams", {"name": name})
    assert response.status_code == 201
    stream_id: str = response.json()["id"]
    return stream_id


async def test_targets_are_added_listed_changed_and_deleted(api: Api) -> None:
    stream_id = await _stream(api)
    created = await api.post("/api/streams/studio/targets", {"name": " YouTube ", "url": YOUTUBE})
    assert created.status_code == 201, created.text
    target = created.json()
    assert target["name"] == "YouTube"
    assert target["url"] == "rtmp://a.rtmp.youtube.com/live2/****"
    assert target["stream_id"] == stream_id and target["disabled"] is False
    second = (
        await api.post(
            f"/api/streams/{stream_id}/targets",
            {"name": "Facebook", "url": FACEBOOK, "disabled": True},
        )
    ).json()
    assert second["url"] == "rtmps://live-api-s.facebook.com/rtmp/****"

    page = (await api.get("/api/streams/studio/targets")).json()
    assert [t["name"] for t in page["items"]] == ["YouTube", "Facebook"]
    assert page["total"] == 2
    assert (await api.get("/api/streams/studio/targets", limit=1)).json()["total"] == 2

    changed = await api.patch(
        f"/api/streams/studio/targets/{target['id']}",
        {"disabled": True, "url": "rtmp://live.twitch.tv/app/live_123_abc"},
    )
    assert changed.status_code == 200
    assert changed.json()["url"] == "rtmp://live.twitch.tv/app/****"
    assert changed.json()["disabled"] is True
    stored = await api.store.get_target(stream_id, target["id"])
    assert stored is not None and stored.url == "rtmp://live.twitch.tv/app/live_123_abc"
    assert (await api.store.enabled_targets(stream_id)) == []

    shown = await api.get(f"/api/streams/studio/targets/{target['id']}")
    assert shown.json() == changed.json()
    assert (await api.delete(f"/api/streams/studio/targets/{target['id']}")).status_code == 204
    assert (await api.delete(f"/api/streams/studio/targets/{target['id']}")).status_code == 404
    assert [t["id"] for t in (await api.get("/api/streams/studio/targets")).json()["items"]] == [
        second["id"]
    ]
    # Nothing ever answered the keys.
    for key in ("abcd-efgh-ijkl-mnop", "FB-1234", "live_123_abc", "s_bl"):
        assert key not in (await api.get("/api/streams/studio/targets")).text


async def test_bad_targets_are_refused_without_echoing_the_key(api: Api) -> None:
    await _stream(api)
    cases = [
        {"name": "x", "url": "http://host/app/secret-key-1"},
        {"name": "x", "url": "rtmp://host/secret-key-1"},
        {"name": "x", "url": "rtmp://user:secret-key-1@host/app/k"},
        {"name": "", "url": YOUTUBE},
        {"name": "x", "url": "rtmp://host:70000/app/secret-key-1"},
    ]
    for body in cases:
        response = await api.post("/api/streams/studio/targets", body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_request"
        assert "secret-key-1" not in response.text
        assert "abcd-efgh" not in response.text
    assert (
        await api.post("/api/streams/nope/targets", {"name": "x", "url": YOUTUBE})
    ).status_code == 404
    other = await _stream(api, "other")
    target = (await api.post(f"/api/streams/{other}/targets", {"name": "x", "url": YOUTUBE})).json()
    # A target is found only through its own stream.
    assert (await api.get(f"/api/streams/studio/targets/{target['id']}")).status_code == 404
    assert (
        await api.patch(f"/api/streams/studio/targets/{target['id']}", {"disabled": True})
    ).status_code == 404


@settings(max_examples=200, deadline=None)
@given(st.from_regex(URL_PATTERN.removeprefix("^").removesuffix("$"), fullmatch=True))
def test_every_url_the_document_allows_parses(url: str) -> None:
    parsed = parse_rtmp_url(url)
    assert parse_rtmp_url(parsed.full) == parsed
    assert parsed.key not in parsed.masked().rpartition("/")[2]
