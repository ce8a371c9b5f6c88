"""Webhooks in the store: the outbox written with the change that caused it, deliveries and
their attempts, and what deleting a webhook takes with it."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage import AttemptRecord, EndReason, OutboxEvent, SessionRecord, Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "ingest.db") as store:
        await store.create_stream(id="s1", name="n1", key_hash="h1", playback_id="p1", now=0.0)
        yield store


async def hook(store: Store, id: str, events: list[str], *, disabled: bool = False) -> None:
    await store.create_webhook(
        id=id,
        url=f"http://127.0.0.1:9/{id}",
        events=events,
        description="",
        secret="s",
        now=1.0,
        disabled=disabled,
    )


def session(id: str = "x1") -> SessionRecord:
    return SessionRecord(
        id=id, stream_id="s1", name="n1", created_at=5.0, last_seen=5.0, updated_at=5.0
    )


async def test_an_event_lands_with_its_change_and_fans_out_to_subscribers(store: Store) -> None:
    await hook(store, "a", ["stream.started", "stream.idle"])
    await hook(store, "b", ["stream.idle"])
    await hook(store, "c", ["stream.started"], disabled=True)
    await store.insert_session(session(), outbox=[OutboxEvent("stream.started", 5.0, "s1", "x1")])
    record = session()
    record.status = "ended"
    await store.save_sessions([record], outbox=[OutboxEvent("stream.idle", 9.0, "s1", "x1")])

    assert sorted(await store.webhooks_with_pending()) == ["a", "b"]
    a = await store.pending_deliveries("a")
    b = await store.pending_deliveries("b")
    assert [(d.event, d.session_id, d.stream_id) for d in a] == [
        ("stream.started", "x1", "s1"),
        ("stream.idle", "x1", "s1"),
    ]
    assert [d.event for d in b] == ["stream.idle"]
    assert a[1].event_id == b[0].event_id  # one event, delivered to each
    assert await store.pending_deliveries("c") == []


async def test_no_subscriber_no_outbox_row(store: Store, tmp_path: Path) -> None:
    await hook(store, "a", ["recording.ready"])
    await store.log_event(
        "publish_rejected", at=2.0, outbox=[OutboxEvent("publish.rejected", 2.0, data={"r": 1})]
    )
    with sqlite3.connect(tmp_path / "ingest.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1


async def test_a_change_that_fails_leaves_no_event(store: Store, tmp_path: Path) -> None:
    await hook(store, "a", ["stream.started"])
    orphan = SessionRecord(
        id="x2", stream_id="nope", name="n", created_at=1.0, last_seen=1.0, updated_at=1.0
    )
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert_session(orphan, outbox=[OutboxEvent("stream.started", 1.0, "nope")])
    assert await store.pending_deliveries("a") == []
    with sqlite3.connect(tmp_path / "ingest.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0


async def test_a_retried_write_keeps_one_event(store: Store) -> None:
    await hook(store, "a", ["stream.created"])
    event = OutboxEvent("stream.created", 3.0, "s2")
    await store.create_stream(
        id="s2", name="n2", key_hash="h2", playback_id="p2", now=3.0, outbox=[event]
    )
    await store.log_event("again", at=3.0, outbox=[event])
    assert len(await store.pending_deliveries("a")) == 1


async def test_stream_deleted_and_recovered_sessions_are_events(store: Store) -> None:
    await hook(store, "a", ["stream.deleted", "stream.idle"])
    await store.insert_session(session("x3"))
    closed = await store.close_open_sessions(
        reason=EndReason.SERVER_RESTART, now=7.0, event="stream.idle"
    )
    assert [s.id for s in closed] == ["x3"]
    assert not await store.delete_stream("nope", now=8.0, outbox=[OutboxEvent("stream.deleted", 8)])
    assert await store.delete_stream("s1", now=8.0, outbox=[OutboxEvent("stream.deleted", 8, "s1")])
    pending = await store.pending_deliveries("a")
    assert [(d.event, d.session_id) for d in pending] == [
        ("stream.idle", "x3"),
        ("stream.deleted", None),
    ]
    deleted = await store.get_stream_any("s1")
    assert deleted is not None and await store.get_stream("s1") is None


async def test_attempts_are_logged_and_settle_the_delivery(store: Store) -> None:
    await hook(store, "a", ["stream.started"])
    await store.insert_session(session(), outbox=[OutboxEvent("stream.started", 5.0, "s1", "x1")])
    (pending,) = await store.pending_deliveries("a")
    assert pending.body is None
    assert await store.set_event_body(pending.event_id, '{"first":1}') == '{"first":1}'
    assert await store.set_event_body(pending.event_id, '{"second":2}') == '{"first":1}'
    await store.record_attempt(
        pending.id, AttemptRecord(6.0, 503, 0.01, "HTTP 503"), state="pending", next_attempt=7.0
    )
    (again,) = await store.pending_deliveries("a")
    assert again.attempts == 1 and again.next_attempt == 7.0 and again.body == '{"first":1}'
    await store.record_attempt(
        pending.id, AttemptRecord(7.0, 204, 0.02, None), state="delivered", next_attempt=7.0
    )
    assert await store.pending_deliveries("a") == []
    deliveries, total = await store.list_deliveries("a")
    assert total == 1
    (delivery,) = deliveries
    assert delivery.state == "delivered" and delivery.attempts == 2
    assert [(a.status_code, a.error) for a in delivery.attempt_log] == [
        (503, "HTTP 503"),
        (204, None),
    ]


async def test_update_and_delete_a_webhook(store: Store, tmp_path: Path) -> None:
    await hook(store, "a", ["stream.started"])
    await hook(store, "b", ["stream.started"])
    changed = await store.update_webhook("a", now=2.0, disabled=True, secret="t")
    assert changed is not None and changed.disabled and changed.secret == "t"
    assert await store.update_webhook("zz", now=2.0, disabled=True) is None
    await store.update_webhook("a", now=3.0, disabled=False)
    await store.insert_session(session(), outbox=[OutboxEvent("stream.started", 5.0, "s1", "x1")])
    (delivery,) = await store.pending_deliveries("a")
    await store.record_attempt(
        delivery.id, AttemptRecord(6.0, None, 5.0, "timed out"), state="pending", next_attempt=9
    )
    assert await store.delete_webhook("a")
    assert not await store.delete_webhook("a")
    assert await store.get_webhook("a") is None
    with sqlite3.connect(tmp_path / "ingest.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM webhook_attempts").fetchone()[0] == 0
        # b still has a delivery of the event: it stays.
        assert conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1
    assert await store.delete_webhook("b")
    with sqlite3.connect(tmp_path / "ingest.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 0
    webhooks, total = await store.list_webhooks()
    assert webhooks == [] and total == 0


async def test_heads_are_each_streams_oldest_pending_delivery(store: Store) -> None:
    await store.create_stream(id="s2", name="n2", key_hash="h2", playback_id="p2", now=0.0)
    await hook(store, "a", ["stream.started", "publish.rejected"])
    for n, stream_id in enumerate(["s1", "s1", "s2", None, None]):
        await store.log_event(
            "x", at=float(n), outbox=[OutboxEvent("publish.rejected", float(n), stream_id)]
        )
    pending = await store.pending_deliveries("a")
    assert [d.stream_id for d in pending] == ["s1", "s1", "s2", None, None]
    heads = await store.delivery_heads("a")
    assert sorted(i for i, _ in heads) == [pending[0].id, pending[2].id, pending[3].id]
    await store.record_attempt(
        pending[0].id, AttemptRecord(9.0, 200, 0.1, None), state="delivered", next_attempt=9.0
    )
    heads = await store.delivery_heads("a")
    assert sorted(i for i, _ in heads) == [pending[1].id, pending[2].id, pending[3].id]
    assert [d.id for d in await store.get_deliveries([pending[0].id, pending[1].id])] == [
        pending[1].id
    ]
    assert await store.count_pending_deliveries() == 4


async def test_an_attempt_of_a_deleted_webhooks_delivery_is_dropped(store: Store) -> None:
    await hook(store, "a", ["stream.started"])
    await store.insert_session(session(), outbox=[OutboxEvent("stream.started", 5.0, "s1", "x1")])
    (delivery,) = await store.pending_deliveries("a")
    assert await store.delete_webhook("a")
    await store.record_attempt(
        delivery.id, AttemptRecord(6.0, 200, 0.1, None), state="delivered", next_attempt=6.0
    )
    assert await store.list_deliveries("a") == ([], 0)


async def test_settled_deliveries_are_pruned_pending_ones_kept(
    store: Store, tmp_path: Path
) -> None:
    await hook(store, "a", ["stream.started"])
    for n in (1, 2, 3):
        await store.insert_session(
            session(f"x{n}"), outbox=[OutboxEvent("stream.started", 5.0, "s1", f"x{n}")]
        )
    first, second, _ = await store.pending_deliveries("a")
    await store.record_attempt(
        first.id, AttemptRecord(10.0, 200, 0.1, None), state="delivered", next_attempt=10.0
    )
    await store.record_attempt(
        second.id, AttemptRecord(50.0, 500, 0.1, "HTTP 500"), state="failed", next_attempt=50.0
    )
    assert await store.prune_deliveries(before=20.0) == 1  # the one settled at 10
    deliveries, total = await store.list_deliveries("a")
    assert total == 2 and {d.session_id for d in deliveries} == {"x2", "x3"}
    assert await store.prune_deliveries(before=1e12) == 1  # the failed one; x3 is pending
    assert [d.session_id for d in await store.pending_deliveries("a")] == ["x3"]
    with sqlite3.connect(tmp_path / "ingest.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM webhook_attempts").fetchone()[0] == 0
