"""``rtmp-ingest streams ...`` and ``sessions ...`` against a real store in a temp dir."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.admin_commands import format_bytes, format_duration
from ingest.cli import main
from storage import SessionRecord, Store

T0 = 1795289050.123  # 2026-11-21T19:24:10.123Z


class Cli:
    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys
        self.db = config.parent / "data" / "ledger.db"

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--config", str(self.config)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    def create(self, name: str, *extra: str) -> dict[str, Any]:
        created: dict[str, Any] = self.json("streams", "create", name, *extra)
        return created

    def insert(self, *sessions: SessionRecord) -> None:
        async def insert() -> None:
            store = await Store.open(self.db)
            try:
                for session in sessions:
                    await store.insert_session(session)
            finally:
                await store.close()

        asyncio.run(insert())


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase = "ledger.db"\n'
        '[rtmp]\nlisten = "0.0.0.0:1936"\napp = "show"\n'
    )
    return Cli(config, capsys)


def _session(stream_id: str, session_id: str, n: int, **fields: Any) -> SessionRecord:
    return SessionRecord(
        id=session_id,
        stream_id=stream_id,
        name="studio",
        created_at=T0 + 3600 * n,
        last_seen=T0 + 3600 * n + 65,
        updated_at=T0 + 3600 * n + 65,
        **fields,
    )


def test_create_prints_server_and_key_once_as_obs_asks(cli: Cli) -> None:
    code, out, _ = cli("streams", "create", "studio")
    assert code == 0
    server = re.search(r"^Server:\s+(\S+)$", out, re.M)
    key = re.search(r"^Stream Key:\s+(\S+)$", out, re.M)
    assert server and key
    assert re.fullmatch(r"rtmp://[^/]+:1936/show", server.group(1))
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", key.group(1))
    assert out.count(key.group(1)) == 1
    assert re.search(r"^ID:\s+\S+", out, re.M) and re.search(r"^Playback ID:\s+\S+", out, re.M)
    assert "studio" in out


def test_create_json_is_the_api_shape_and_list_and_show_never_print_the_key(cli: Cli) -> None:
    created = cli.create("studio", "--record")
    key = created["stream_key"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", key)
    assert created["record"] is True and created["status"] == "idle"
    assert created["ingest_url"].endswith(":1936/show")
    assert set(created) >= {"id", "name", "playback_id", "created_at", "updated_at", "is_active"}
    for args in (
        ("streams", "list"),
        ("streams", "list", "--json"),
        ("streams", "show", "studio"),
        ("streams", "show", created["id"], "--json"),
    ):
        code, out, err = cli(*args)
        assert code == 0
        assert key not in out and key not in err
        assert "stream_key" not in out
    shown = cli.json("streams", "show", "studio")
    assert {k: v for k, v in created.items() if k != "stream_key"} == shown


def test_a_taken_name_fails(cli: Cli) -> None:
    cli.create("studio")
    code, _, err = cli("streams", "create", "studio")
    assert code == 1 and "already exists" in err


def test_list_is_a_table_and_pages(cli: Cli) -> None:
    for name in ("alpha", "beta", "gamma"):
        cli.create(name)
    code, out, _ = cli("streams", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["NAME", "ID", "STATUS", "RECORD"]
    assert [line.split()[0] for line in lines[1:4]] == ["alpha", "beta", "gamma"]
    page = cli.json("streams", "list", "--limit", "1", "--offset", "1")
    assert [s["name"] for s in page["items"]] == ["beta"]
    assert (page["total"], page["offset"], page["limit"]) == (3, 1, 1)
    code, out, _ = cli("streams", "list", "--limit", "2")
    assert "1-2 of 3 streams" in out
    with pytest.raises(SystemExit) as exited:
        cli("streams", "list", "--limit", "0")
    assert exited.value.code == 2


def test_rotate_key_prints_a_new_key(cli: Cli) -> None:
    created = cli.create("studio")
    code, out, _ = cli("streams", "rotate-key", "studio")
    key = re.search(r"^Stream Key:\s+(\S+)$", out, re.M)
    assert code == 0 and key
    assert key.group(1) != created["stream_key"] and len(key.group(1)) == 32
    rotated = cli.json("streams", "rotate-key", created["id"])
    assert rotated["stream_key"] not in (key.group(1), created["stream_key"])


def test_disable_and_enable(cli: Cli) -> None:
    cli.create("studio")
    code, out, _ = cli("streams", "disable", "studio")
    assert code == 0 and "disabled" in out
    assert cli.json("streams", "show", "studio")["disabled"] is True
    code, out, _ = cli("streams", "list")
    assert out.splitlines()[1].split()[2] == "disabled"
    code, out, _ = cli("streams", "enable", "studio")
    assert code == 0 and "enabled" in out
    assert cli.json("streams", "show", "studio")["disabled"] is False


def test_delete_needs_yes_without_a_terminal(cli: Cli) -> None:
    cli.create("studio")
    code, _, err = cli("streams", "delete", "studio")
    assert code == 1 and "--yes" in err
    assert cli.json("streams", "show", "studio")["name"] == "studio"
    code, out, _ = cli("streams", "delete", "studio", "--yes")
    assert code == 0 and "Deleted" in out
    code, _, err = cli("streams", "show", "studio")
    assert code == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("\n", False), ("no\n", False)])
def test_delete_asks_on_a_terminal(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, answer: str, deleted: bool
) -> None:
    cli.create("studio")
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    code, out, _ = cli("streams", "delete", "studio")
    assert code == 0 and "[y/N]" in out
    code, _, _ = cli("streams", "show", "studio")
    assert code == (1 if deleted else 0)


@pytest.mark.parametrize(
    "args",
    [
        ("streams", "show", "nope"),
        ("streams", "rotate-key", "nope"),
        ("streams", "disable", "nope"),
        ("streams", "enable", "nope"),
        ("streams", "delete", "nope", "--yes"),
        ("sessions", "list", "--stream", "nope"),
    ],
)
def test_an_unknown_ref_exits_1(cli: Cli, args: tuple[str, ...]) -> None:
    code, out, err = cli(*args)
    assert code == 1 and out == ""
    assert err.strip() == "rtmp-ingest: no stream named or with id 'nope'"


def test_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[storage]\ndata_dir = 5\n")
    assert main(["streams", "list", "--config", str(config)]) == 2
    assert "storage.data_dir" in capsys.readouterr().err


def test_sessions_list_and_show(cli: Cli) -> None:
    one = cli.create("studio")
    two = cli.create("backup")
    cli.insert(
        _session(
            one["id"], "s-old", 0, status="ended", ended_at=T0 + 65, duration=65.0,
            bytes_received=12_345_678, end_reason="unpublished",
            tracks=[{"kind": "video", "codec": "h264", "width": 1920, "height": 1080}],
        ),
        _session(two["id"], "s-other", 1, status="ended", end_reason="timeout", duration=5.0),
        _session(one["id"], "s-live", 2, duration=30.0, bytes_received=2048),
    )  # fmt: skip
    code, out, _ = cli("sessions", "list")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["ID", "STREAM", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == ["s-live", "s-other", "s-old"]
    old = lines[3]
    assert "1m05s" in old and "12.3 MB" in old and "unpublished" in old
    assert "2026-11-21 19:24:10" in old

    page = cli.json("sessions", "list", "--stream", "studio")
    assert [s["id"] for s in page["items"]] == ["s-live", "s-old"] and page["total"] == 2
    page = cli.json("sessions", "list", "--status", "ended", "--limit", "1")
    assert [s["id"] for s in page["items"]] == ["s-other"] and page["total"] == 2

    shown = cli.json("sessions", "show", "s-old")
    assert shown["created_at"] == "2026-11-21T19:24:10.123Z"
    assert shown["duration"] == 65.0 and shown["bytes_received"] == 12_345_678
    assert shown["playback_id"] == one["playback_id"]
    code, out, _ = cli("sessions", "show", "s-old")
    assert code == 0 and "unpublished" in out and "1920x1080" in out and "1m05s" in out
    assert cli.json("streams", "show", "studio")["status"] == "live"
    assert cli.json("streams", "show", "backup")["status"] == "idle"

    code, _, err = cli("sessions", "show", "nope")
    assert code == 1 and "no session with id 'nope'" in err


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0s"), (4.4, "4s"), (59.6, "1m00s"), (65, "1m05s"), (7389, "2h03m09s")],
)
def test_durations_for_people(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("count", "shown"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (12_345_678, "12.3 MB"), (999_999, "1.0 MB")],
)
def test_byte_counts_for_people(count: int, shown: str) -> None:
    assert format_bytes(count) == shown
