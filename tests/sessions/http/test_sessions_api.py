"""Sessions and analytics over the API: filters, paging, live overrides, kick."""

from __future__ import annotations

import pytest

from storage.models import StreamRecord
from tests.sessions.http.conftest import T0, Api, session_record


async def _two_streams(api: Api) -> tuple[StreamRecord, StreamRecord]:
    one, _ = await api.streams.create("one")
    two, _ = await api.streams.create("two")
    return one, two


async def _ledger(api: Api) -> tuple[StreamRecord, StreamRecord]:
    """Four ended sessions an hour apart (a1, b1, a2, b2) and one live (a3)."""
    one, two = await _two_streams(api)
    for n, (stream, sid) in enumerate(
        [(one, "a1"), (two, "b1"), (one, "a2"), (two, "b2"), (one, "a3")]
    ):
        live = sid == "a3"
        await api.store.insert_session(
            session_record(
                stream.id,
                sid,
                created_at=T0 + 3600 * n,
                status="live" if live else "ended",
                ended_at=None if live else T0 + 3600 * n + 10,
                end_reason=None if live else "unpublished",
                duration=10.0,
                ingest_seconds=10.0,
                bytes_received=1000 * (n + 1),
                viewer_seconds=1.5,
                transcoded_segments_duration=4.25,
            )
        )
    return one, two


async def test_issues_show_open_and_past_with_their_times(api: Api) -> None:
    one, _ = await _two_streams(api)
    await api.store.insert_session(
        session_record(
            one.id,
            "h1",
            is_healthy=False,
            issues=[
                # An entry stored before the live health checks: no started_at/ended_at.
                {"code": "timestamps_backwards", "message": "jumped back", "at": T0 + 1},
                {
                    "code": "no_video",
                    "message": "no video frame for 5.0 s",
                    "at": T0 + 2,
                    "started_at": T0 + 2,
                    "ended_at": T0 + 9,
                },
                {
                    "code": "ingest_drift",
                    "message": "media time 2.5 s behind the wall clock",
                    "at": T0 + 3,
                    "started_at": T0 + 3,
                    "ended_at": None,
                },
            ],
        )
    )
    body = (await api.get("/api/sessions/h1")).json()
    old, past, current = body["issues"]
    assert old == {
        "code": "timestamps_backwards",
        "message": "jumped back",
        "at": "2026-11-21T19:24:11.123Z",
        "started_at": "2026-11-21T19:24:11.123Z",
        "ended_at": None,
        "open": True,
    }
    assert past["started_at"] == "2026-11-21T19:24:12.123Z"
    assert past["ended_at"] == "2026-11-21T19:24:19.123Z" and past["open"] is False
    assert current["ended_at"] is None and current["open"] is True
    assert body["is_healthy"] is False


def _ids(response_json: dict[str, object]) -> list[str]:
    items = response_json["items"]
    assert isinstance(items, list)
    return [item["id"] for item in items]


_ENTRY = {
    "target_id": "t1",
    "name": "youtube",
    "status": "ended",
    "connected_seconds": 64.5,
    "bytes_sent": 120_000,
    "reconnects": 1,
    "skipped_bytes": 3000,
    "last_error": "connection lost: [Errno 104] Connection reset by peer",
}


async def test_session_json_has_every_field_in_its_format(api: Api) -> None:
    one, _ = await _two_streams(api)
    await api.store.insert_session(
        session_record(
            one.id,
            "s1",
            status="ended",
            ended_at=T0 + 65.4321,
            duration=65.4321,
            media_duration=65.0,
            bytes_received=123456,
            tracks=[{"kind": "video", "codec": "h264", "width": 1280}],
            issues=[{"code": "slow", "message": "slower than real time", "at": T0 + 1}],
            end_reason="unpublished",
            remote_addr="192.0.2.1:50000",
            encoder="obs-output module",
            multistream=[_ENTRY],
        )
    )
    response = await api.get("/api/sessions/s1")
    assert response.status_code == 200
    body = response.json()
    assert body["created_at"] == "2026-11-21T19:24:10.123Z"
    assert body["ended_at"] == "2026-11-21T19:25:15.555Z"
    assert body["duration"] == 65.432
    assert body["bytes_received"] == 123456 and isinstance(body["bytes_received"], int)
    assert body["tracks"] == [{"kind": "video", "codec": "h264", "width": 1280}]
    assert body["issues"][0]["at"] == "2026-11-21T19:24:11.123Z"
    assert body["playback_id"] == one.playback_id
    assert body["status"] == "ended" and body["end_reason"] == "unpublished"
    assert body["multistream"] == [_ENTRY]
    assert set(body) >= {
        "id", "stream_id", "name", "status", "created_at", "ended_at", "last_seen",
        "updated_at", "duration", "media_duration", "ingest_seconds", "bytes_received",
        "media_bytes", "ingest_rate", "tracks", "is_healthy", "issues", "end_reason",
        "err_message", "remote_addr", "encoder", "source_segments",
        "source_segments_duration", "source_bytes", "viewer_seconds", "record",
        "recording_status", "recording_url", "mp4_url", "playback_id", "multistream",
        "reconnects", "gaps", "gap_seconds",
    }  # fmt: skip
    assert (body["reconnects"], body["gaps"], body["gap_seconds"]) == (0, [], 0.0)


async def test_a_reconnecting_session_shows_its_status_and_gaps(api: Api) -> None:
    one, two = await _two_streams(api)
    waiting = session_record(
        one.id,
        "r1",
        duration=30.0,
        ingest_seconds=27.5,
        reconnects=1,
        gaps=[{"from": T0 + 10, "to": T0 + 12.5, "seconds": 2.5}],
        gap_seconds=2.5,
    )
    await api.store.insert_session(waiting)
    await api.store.insert_session(session_record(two.id, "l1", created_at=T0 + 60))
    waiting.status = "reconnecting"
    await api.store.save_sessions([waiting])
    api.live.sessions["r1"] = waiting
    body = (await api.get("/api/sessions/r1")).json()
    assert body["status"] == "reconnecting"
    assert (body["reconnects"], body["gap_seconds"], body["ingest_seconds"]) == (1, 2.5, 27.5)
    assert body["gaps"] == [
        {"from": "2026-11-21T19:24:20.123Z", "to": "2026-11-21T19:24:22.623Z", "seconds": 2.5}
    ]
    assert _ids((await api.get("/api/sessions", status="reconnecting")).json()) == ["r1"]
    assert _ids((await api.get("/api/sessions", status="live")).json()) == ["l1"]
    stream = (await api.get(f"/api/streams/{one.id}")).json()
    assert (stream["status"], stream["is_active"]) == ("reconnecting", True)
    active = (await api.get(f"/api/streams/{one.id}/sessions/active")).json()
    assert active["id"] == "r1" and active["status"] == "reconnecting"


async def test_a_deleted_streams_sessions_have_no_playback_id(api: Api) -> None:
    one, _ = await _two_streams(api)
    await api.store.insert_session(session_record(one.id, "s1", status="ended"))
    await api.streams.delete(one.id)
    body = (await api.get("/api/sessions/s1")).json()
    assert body["stream_id"] == one.id and body["playback_id"] is None


async def test_list_is_newest_first_with_filters_and_total(api: Api) -> None:
    one, two = await _ledger(api)
    page = (await api.get("/api/sessions")).json()
    assert _ids(page) == ["a3", "b2", "a2", "b1", "a1"] and page["total"] == 5
    page = (await api.get("/api/sessions", stream_id=one.id)).json()
    assert _ids(page) == ["a3", "a2", "a1"] and page["total"] == 3
    page = (await api.get("/api/sessions", status="ended", limit=2)).json()
    assert _ids(page) == ["b2", "a2"] and page["total"] == 4 and page["limit"] == 2
    page = (await api.get("/api/sessions", status="live")).json()
    assert _ids(page) == ["a3"]
    page = (await api.get(f"/api/streams/{two.id}/sessions", offset=1)).json()
    assert _ids(page) == ["b1"] and page["total"] == 2 and page["offset"] == 1


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("2026-11-21T20:24:10.123Z", None, ["a3", "b2", "a2", "b1"]),
        ("2026-11-21T20:24:10.123", None, ["a3", "b2", "a2", "b1"]),
        ("2026-11-21T21:24:10.123+01:00", None, ["a3", "b2", "a2", "b1"]),
        (None, "2026-11-21T21:24:10.123Z", ["b1", "a1"]),
        (str(T0 + 3600), str(int(T0 + 3 * 3600)), ["a2", "b1"]),
    ],
)
async def test_list_by_time_range(
    api: Api, since: str | None, until: str | None, expected: list[str]
) -> None:
    await _ledger(api)
    params = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
    page = (await api.get("/api/sessions", **params)).json()
    assert _ids(page) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"until": "2026-13-01"},
        {"since": "nan"},
        {"since": ""},
        {"since": "1e308"},
        {"since": "9" * 400},
        {"until": "99999999999999999999"},
        {"until": "-1e20"},
        {"status": "paused"},
    ],
)
async def test_bad_filters_are_400(api: Api, params: dict[str, str | int]) -> None:
    for url in ("/api/sessions", "/api/analytics"):
        if "status" in params and url == "/api/analytics":
            continue
        response = await api.get(url, **params)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_parameter" and error["message"]


async def test_a_range_that_ends_before_it_starts_selects_nothing(api: Api) -> None:
    await _ledger(api)
    params = {"since": "2026-11-22", "until": "2026-11-21"}
    page = (await api.get("/api/sessions", **params)).json()
    assert page["items"] == [] and page["total"] == 0
    totals = (await api.get("/api/analytics", **params)).json()
    assert totals["count"] == 0
    assert totals["since"] == "2026-11-22T00:00:00.000Z"


async def test_times_at_the_ends_of_the_calendar_are_accepted(api: Api) -> None:
    await _ledger(api)
    for since, shown in [
        ("-62135596800", "0001-01-01T00:00:00.000Z"),
        # An offset carries the first day of year 1 before it in UTC: the same bound.
        ("0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00.000Z"),
        ("253402300799.999", "9999-12-31T23:59:59.999Z"),
    ]:
        response = await api.get("/api/analytics", since=since)
        assert response.status_code == 200, response.text
        assert response.json()["since"] == shown


async def test_live_rows_are_replaced_by_their_in_memory_versions(api: Api) -> None:
    one, _ = await _ledger(api)
    fresh = session_record(
        one.id, "a3", created_at=T0 + 4 * 3600, bytes_received=999_999, ingest_rate=2000.0
    )
    api.live.sessions["a3"] = fresh
    page = (await api.get("/api/sessions")).json()
    assert page["items"][0]["id"] == "a3"
    assert page["items"][0]["bytes_received"] == 999_999
    assert page["items"][1]["bytes_received"] == 4000
    detail = (await api.get("/api/sessions/a3")).json()
    assert detail["bytes_received"] == 999_999 and detail["ingest_rate"] == 2000.0
    active = (await api.get(f"/api/streams/{one.id}/sessions/active")).json()
    assert active["bytes_received"] == 999_999
    page = (await api.get(f"/api/streams/{one.id}/sessions")).json()
    assert page["items"][0]["bytes_received"] == 999_999


async def test_an_unknown_session_is_404(api: Api) -> None:
    for response in (
        await api.get("/api/sessions/nope"),
        await api.post("/api/sessions/nope/kick"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_kick_a_live_session_then_409(api: Api) -> None:
    one, _ = await _ledger(api)
    api.live.sessions["a3"] = session_record(one.id, "a3", created_at=T0 + 4 * 3600)
    response = await api.post("/api/sessions/a3/kick")
    assert response.status_code == 200
    assert response.json() == {"kicked": True, "session_id": "a3"}
    assert api.live.kicked == ["a3"]
    response = await api.post("/api/sessions/a3/kick")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_live"
    response = await api.post("/api/sessions/a1/kick")
    assert response.status_code == 409


async def test_analytics_sums_over_a_range_and_a_stream(api: Api) -> None:
    one, _ = await _ledger(api)
    body = (await api.get("/api/analytics")).json()
    assert body == {
        "count": 5,
        "total_ingest_seconds": 50.0,
        "total_bytes": 15000,
        "total_viewer_seconds": 7.5,
        "total_transcoded_seconds": 21.25,
        "since": None,
        "until": None,
    }
    body = (await api.get("/api/analytics", stream_id=one.id)).json()
    assert (body["count"], body["total_bytes"]) == (3, 1000 + 3000 + 5000)
    body = (
        await api.get("/api/analytics", since="2026-11-21T20:24:10.123Z", until=str(T0 + 3 * 3600))
    ).json()
    assert (body["count"], body["total_bytes"]) == (2, 2000 + 3000)
    assert body["since"] == "2026-11-21T20:24:10.123Z"
    assert body["until"] == "2026-11-21T22:24:10.123Z"
    body = (await api.get("/api/analytics", since="2030-01-01")).json()
    assert body["count"] == 0 and body["total_bytes"] == 0
