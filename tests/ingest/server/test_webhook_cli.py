"""``rtmp-ingest webhooks ...`` against a real store: the secret printed once, the API's JSON
with ``--json``, and the deliveries."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from storage import AttemptRecord, OutboxEvent, SessionRecord, Store
from tests.ingest.server.test_admin_cli import T0, Cli


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase = "ledger.db"\n')
    return Cli(config, capsys)


def test_create_prints_the_secret_once_then_list_show_never(cli: Cli) -> None:
    code, out, err = cli(
        "webhooks", "create", "http://127.0.0.1:8000/hook", "--event", "stream.idle"
    )
    assert code == 0, err
    secret = re.search(r"^Secret: (whsec_\S+)$", out, re.M)
    assert secret and out.count(secret.group(1)) == 1
    webhook_id = re.search(r"^ID:\s+(\S+)$", out, re.M)
    assert webhook_id
    for args in (("webhooks", "list"), ("webhooks", "show", webhook_id.group(1))):
        code, shown, _ = cli(*args)
        assert code == 0 and secret.group(1) not in shown and "127.0.0.1:8000" in shown
    listing = cli.json("webhooks", "list")
    assert listing["total"] == 1 and listing["items"][0]["events"] == ["stream.idle"]
    assert "secret" not in listing["items"][0]
    rotated = cli.json("webhooks", "rotate-secret", webhook_id.group(1))
    assert rotated["secret"] != secret.group(1)
    assert cli.json("webhooks", "disable", webhook_id.group(1))["disabled"] is True
    code, _, err = cli("webhooks", "delete", webhook_id.group(1))
    assert code == 1 and "--yes" in err  # no terminal to confirm on
    code, out, _ = cli("webhooks", "delete", webhook_id.group(1), "--yes")
    assert code == 0 and "Deleted" in out
    assert cli.json("webhooks", "list")["total"] == 0


def test_bad_url_and_unknown_id_fail_clearly(cli: Cli) -> None:
    code, _, err = cli("webhooks", "create", "ftp://example.com/")
    assert code == 1 and "http:// or https://" in err
    code, _, err = cli("webhooks", "show", "nope")
    assert code == 1 and "no webhook" in err


def test_deliveries_show_each_attempt(cli: Cli) -> None:
    created = cli.json("webhooks", "create", "http://127.0.0.1:1/h", "--event", "stream.started")
    stream = cli.create("studio")

    async def deliver() -> None:
        store = await Store.open(cli.db)
        try:
            record = SessionRecord(
                id="x1", stream_id=stream["id"], name="studio", created_at=T0, last_seen=T0,
                updated_at=T0,
            )  # fmt: skip
            event = OutboxEvent("stream.started", T0, stream["id"], "x1")
            await store.insert_session(record, outbox=[event])
            (pending,) = await store.pending_deliveries(created["id"])
            attempt = AttemptRecord(T0 + 1, 503, 0.01, "HTTP 503")
            await store.record_attempt(pending.id, attempt, state="pending", next_attempt=T0 + 3)
        finally:
            await store.close()

    asyncio.run(deliver())
    code, out, _ = cli("webhooks", "deliveries", created["id"])
    assert code == 0 and "stream.started" in out and "pending" in out and "HTTP 503" in out
    page = cli.json("webhooks", "deliveries", created["id"])
    assert page["items"][0]["attempts"][0]["status_code"] == 503
