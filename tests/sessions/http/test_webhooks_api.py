"""The webhooks API: create (the secret shown once), list, show, change, rotate the secret,
delete, and the deliveries with their attempts; bad input gets a clear 4xx."""

from __future__ import annotations

from storage import AttemptRecord, OutboxEvent
from tests.sessions.http.conftest import T0, Api, session_record


async def test_create_shows_the_secret_once_and_never_again(api: Api) -> None:
    created = await api.post(
        "/api/webhooks",
        {"url": "http://127.0.0.1:9000/hook", "events": ["stream.started", "stream.idle"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert body["events"] == ["stream.started", "stream.idle"] and body["disabled"] is False
    for url in ("/api/webhooks", f"/api/webhooks/{body['id']}"):
        answer = await api.get(url)
        assert answer.status_code == 200 and secret not in answer.text
    listing = (await api.get("/api/webhooks")).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == body["id"]
    rotated = (await api.post(f"/api/webhooks/{body['id']}/rotate-secret")).json()
    assert rotated["secret"] != secret and rotated["secret"].startswith("whsec_")
    stored = await api.store.get_webhook(body["id"])
    assert stored is not None and stored.secret == rotated["secret"]


async def test_default_events_leave_out_publish_rejected(api: Api) -> None:
    body = (await api.post("/api/webhooks", {"url": "https://hooks.example.com/x"})).json()
    assert "publish.rejected" not in body["events"] and "stream.idle" in body["events"]


async def test_bad_input_is_a_clear_4xx(api: Api) -> None:
    for payload, status, words in [
        ({"url": "ftp://example.com/x"}, 422, "http:// or https://"),
        ({"url": "http://user:pw@example.com/"}, 422, "user name or password"),
        ({"url": "http://example.com/#x"}, 422, "fragment"),
        ({"url": "http://example.com:70000/"}, 422, "port"),
        ({"url": "http://example.com/", "events": ["stream.begun"]}, 422, "events.0"),
        ({"url": "http://example.com/", "events": []}, 422, "events"),
        ({"url": "http://example.com/", "secret": "mine"}, 422, "secret"),
    ]:
        answer = await api.post("/api/webhooks", payload)
        assert answer.status_code == status, (payload, answer.text)
        assert words in answer.text, (payload, answer.text)
    assert (await api.get("/api/webhooks/nope")).status_code == 404
    assert (await api.patch("/api/webhooks/nope", {"disabled": True})).status_code == 404
    assert (await api.delete("/api/webhooks/nope")).status_code == 404
    assert (await api.post("/api/webhooks/nope/rotate-secret")).status_code == 404
    assert (await api.get("/api/webhooks/nope/deliveries")).status_code == 404


async def test_change_and_delete(api: Api) -> None:
    hook = (await api.post("/api/webhooks", {"url": "http://localhost:1/a"})).json()
    changed = await api.patch(
        f"/api/webhooks/{hook['id']}",
        {"url": "http://localhost:2/b", "events": ["recording.ready"], "disabled": True},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "http://localhost:2/b"
    assert changed.json()["events"] == ["recording.ready"] and changed.json()["disabled"]
    bad = await api.patch(f"/api/webhooks/{hook['id']}", {"url": "nope"})
    assert bad.status_code == 422
    assert (await api.delete(f"/api/webhooks/{hook['id']}")).status_code == 204
    assert (await api.get(f"/api/webhooks/{hook['id']}")).status_code == 404


async def test_deliveries_list_every_attempt(api: Api) -> None:
    stream, _ = await api.streams.create("cam")
    hook = (
        await api.post(
            "/api/webhooks", {"url": "http://127.0.0.1:1/h", "events": ["stream.started"]}
        )
    ).json()
    await api.store.insert_session(
        session_record(stream.id, "x1"), outbox=[OutboxEvent("stream.started", T0, stream.id, "x1")]
    )
    (pending,) = await api.store.pending_deliveries(hook["id"])
    await api.store.record_attempt(
        pending.id,
        AttemptRecord(T0 + 1, None, 0.0123, "ConnectError: refused"),
        state="pending",
        next_attempt=T0 + 2,
    )
    await api.store.record_attempt(
        pending.id, AttemptRecord(T0 + 2, 200, 0.004, None), state="delivered", next_attempt=T0 + 2
    )
    page = (await api.get(f"/api/webhooks/{hook['id']}/deliveries")).json()
    assert page["total"] == 1
    (delivery,) = page["items"]
    assert delivery["event"] == "stream.started" and delivery["state"] == "delivered"
    assert delivery["session_id"] == "x1" and delivery["stream_id"] == stream.id
    assert delivery["next_attempt"] is None
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (None, "ConnectError: refused"),
        (200, None),
    ]
    assert delivery["attempts"][0]["latency"] == 0.012
    assert delivery["attempts"][0]["at"] == "2026-11-21T19:24:11.123Z"
