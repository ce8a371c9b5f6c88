"""``rtmp-ingest streams ...`` and ``sessions ...`` against a real store in a temp dir."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.media import make_flv
from ingest.server.admin_commands import format_bytes, format_duration
from ingest.server.cli import main
from sessions.http.timefmt import format_time
from storage import SessionRecord, Store
from tests.sessions.test_api_after_publish import AUTH, api, stack  # noqa: F401 (fixtures)
from tests.support.media import publish_with_ffmpeg
from tests.support.stack import Stack

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
            multistream=[{
                "target_id": "t1", "name": "youtube", "status": "ended",
                "connected_seconds": 61.0, "bytes_sent": 9_000_000, "reconnects": 2,
                "skipped_bytes": 40_000, "last_error": "closed by the target",
            }],
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

    page = cli.json("sessions", "list", "--since", "2026-11-21T20:24:10.123Z")
    assert [s["id"] for s in page["items"]] == ["s-live", "s-other"]
    page = cli.json("sessions", "list", "--since", str(T0 + 3600), "--until", str(T0 + 7200))
    assert [s["id"] for s in page["items"]] == ["s-other"]

    shown = cli.json("sessions", "show", "s-old")
    assert shown["created_at"] == "2026-11-21T19:24:10.123Z"
    assert shown["duration"] == 65.0 and shown["bytes_received"] == 12_345_678
    assert shown["playback_id"] == one["playback_id"]
    code, out, _ = cli("sessions", "show", "s-old")
    assert code == 0 and "unpublished" in out and "1920x1080" in out and "1m05s" in out
    assert re.search(
        r"^  multistream: youtube \(t1\) ended, connected 1m01s, sent 9\.0 MB, 2 reconnects,"
        r" skipped 40\.0 kB; last error: closed by the target$",
        out,
        re.M,
    ), out
    assert shown["multistream"][0]["reconnects"] == 2
    assert re.search(r"^Started:\s+2026-11-21 19:24:10 UTC$", out, re.M), out
    assert re.search(r"^Ended:\s+2026-11-21 19:25:15 UTC$", out, re.M), out
    assert cli.json("streams", "show", "studio")["status"] == "live"
    assert cli.json("streams", "show", "backup")["status"] == "idle"

    code, _, err = cli("sessions", "show", "nope")
    assert code == 1 and "no session with id 'nope'" in err


def test_sessions_show_prints_recording_and_viewers(cli: Cli) -> None:
    stream = cli.create("studio", "--record")
    base = f"http://viewer.test/recordings/{stream['playback_id']}/s-rec"
    cli.insert(
        _session(
            stream["id"], "s-rec", 0, status="ended", ended_at=T0 + 65, duration=65.0,
            end_reason="unpublished", record=True, recording_status="ready",
            recording_url=f"{base}/vod.m3u8", mp4_url=f"{base}/recording.mp4",
            viewer_seconds=125.0,
        ),
        _session(stream["id"], "s-plain", 1, status="ended", ended_at=T0 + 3665),
    )  # fmt: skip
    code, out, _ = cli("sessions", "show", "s-rec")
    assert code == 0
    shown = dict(re.findall(r"^([A-Za-z0-9 ]+):\s+(.*)$", out, re.M))
    assert shown["Recording"] == "ready"
    assert shown["Recording URL"] == f"{base}/vod.m3u8"
    assert shown["MP4 URL"] == f"{base}/recording.mp4"
    assert shown["Viewer time"] == "2m05s"
    # Every time a block prints says its zone, as the tables' headings do.
    times = {k: v for k, v in shown.items() if re.match(r"\d{4}-\d\d-\d\d ", v)}
    assert set(times) == {"Started", "Last seen", "Ended"}
    assert all(v.endswith(" UTC") for v in times.values()), times
    code, out, _ = cli("sessions", "show", "s-plain")
    shown = dict(re.findall(r"^([A-Za-z0-9 ]+):\s+(.*)$", out, re.M))
    assert (shown["Recording"], shown["Recording URL"], shown["MP4 URL"]) == ("-", "-", "-")
    code, out, _ = cli("streams", "show", "studio")
    shown = dict(re.findall(r"^([A-Za-z0-9 ]+):\s+(.*)$", out, re.M))
    assert shown["Created"].endswith(" UTC") and shown["Updated"].endswith(" UTC")


def test_a_reconnecting_session_and_its_gaps(cli: Cli) -> None:
    stream = cli.create("studio")
    gaps = [{"from": T0 + 20, "to": T0 + 22.5, "seconds": 2.5}]
    cli.insert(
        _session(
            stream["id"], "s-wait", 0, status="reconnecting", duration=65.0,
            ingest_seconds=62.5, reconnects=1, gaps=gaps, gap_seconds=2.5,
        ),
        _session(stream["id"], "s-done", 1, status="ended", end_reason="unpublished"),
    )  # fmt: skip
    page = cli.json("sessions", "list", "--status", "reconnecting")
    assert [s["id"] for s in page["items"]] == ["s-wait"]
    assert cli.json("sessions", "list", "--status", "live")["total"] == 0
    shown = cli.json("sessions", "show", "s-wait")
    assert shown["status"] == "reconnecting"
    assert (shown["reconnects"], shown["gap_seconds"], shown["ingest_seconds"]) == (1, 2.5, 62.5)
    assert shown["gaps"] == [
        {"from": "2026-11-21T19:24:30.123Z", "to": "2026-11-21T19:24:32.623Z", "seconds": 2.5}
    ]
    code, out, _ = cli("sessions", "show", "s-wait")
    fields = dict(re.findall(r"^([A-Za-z0-9 ]+):\s+(.*)$", out, re.M))
    assert (fields["Status"], fields["Reconnects"], fields["Ingest time"]) == (
        "reconnecting",
        "1",
        "1m03s",
    )
    assert "gap: 2026-11-21 19:24:30 UTC to 2026-11-21 19:24:32 UTC (2.500 s)" in out
    assert cli.json("streams", "show", "studio")["status"] == "reconnecting"
    code, out, _ = cli("streams", "list")
    assert code == 0 and "reconnecting" in out.splitlines()[1]


def test_bad_times_exit_1(cli: Cli) -> None:
    for args in (
        ("analytics", "--since", "yesterday"),
        ("sessions", "list", "--until", "2026-13-01"),
        ("analytics", "--since", "1e308"),
    ):
        code, out, err = cli(*args)
        assert code == 1 and out == "", args
        assert re.fullmatch(r"rtmp-ingest: (since|until)\b.*\n", err), err
    # As in the API, a range that ends before it starts selects nothing.
    code, out, _ = cli("analytics", "--since", "2026-11-22", "--until", "2026-11-21", "--json")
    assert code == 0 and json.loads(out)["count"] == 0


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


async def _publish_and_wait(server: Stack, key: str, source: Path, *, realtime: bool) -> str:
    """Publish *source* with ffmpeg; the id of the session once it is stored as ended."""
    before = {s.id for s in (await server.store.list_sessions())[0]}
    assert await publish_with_ffmpeg(source, server.url(key), realtime=realtime) == 0
    async with asyncio.timeout(20):
        while True:
            ended = (await server.store.list_sessions(status="ended"))[0]
            new = [s.id for s in ended if s.id not in before]
            if new:
                return new[0]
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_analytics_and_ended_sessions_match_the_api_after_real_publishes(
    stack: Stack,  # noqa: F811
    api: httpx.AsyncClient,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path}"\ndatabase = "ledger.db"\n')
    cli = Cli(config, capsys)
    assert stack.store.path == tmp_path / "ledger.db"

    async def run(*args: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(cli, *args)

    async def run_json(*args: str) -> Any:
        code, out, err = await run(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    studio, _ = await stack.streams.create("studio")
    backup, backup_key = await stack.streams.create("backup")
    _, studio_key = (await stack.streams.rotate_key(studio.id)) or (None, "")
    source = make_flv(tmp_path / "clip.flv", seconds=2)
    first = await _publish_and_wait(stack, studio_key, source, realtime=True)
    second = await _publish_and_wait(stack, backup_key, source, realtime=False)
    third = await _publish_and_wait(stack, studio_key, source, realtime=False)
    await stack.store.add_viewer_seconds(first, 12.5)
    await stack.store.add_viewer_seconds(third, 3.25)
    # A session a crash left open, closed by recovery (as at a start, or a worker's death).
    crashed = await stack.store.get_session(third)
    assert crashed is not None
    crashed.id, crashed.status, crashed.end_reason, crashed.ended_at = "s-crash", "live", None, None
    crashed.created_at += 10.0
    crashed.ingest_rate, crashed.viewer_seconds = 321_000.0, 0.0
    await stack.store.insert_session(crashed)
    await stack.manager.recover(ids=["s-crash"])

    # An ended session is not being ingested: 0 in the store, the API and the CLI alike,
    # though the publish that ended at real-time pace had a rate while live.
    for session_id in (first, second, third, "s-crash"):
        stored = await stack.store.get_session(session_id)
        assert stored is not None and stored.status == "ended"
        assert stored.ingest_rate == 0.0, session_id
        from_api = (await api.get(f"/api/sessions/{session_id}", headers=AUTH)).json()
        assert from_api["ingest_rate"] == 0.0
        assert from_api == await run_json("sessions", "show", session_id)
        code, out, _ = await run("sessions", "show", session_id)
        assert re.search(r"^Ingest rate:\s+0 B/s$", out, re.M), out

    first_at = (await stack.store.get_session(first)).created_at  # type: ignore[union-attr]
    second_at = (await stack.store.get_session(second)).created_at  # type: ignore[union-attr]
    ranges: list[dict[str, str]] = [
        {},
        {"stream_id": studio.id},
        {"since": repr(second_at)},
        {"since": repr(first_at), "until": repr(second_at), "stream_id": studio.id},
        {"since": format_time(first_at - 60), "until": format_time(first_at + 3600)[:19]},
        {"until": "2000-01-01T00:00:00+02:00"},
    ]
    counts = []
    for params in ranges:
        from_api = (await api.get("/api/analytics", params=params, headers=AUTH)).json()
        args = [f"--{k}={v}" for k, v in params.items() if k != "stream_id"]
        if "stream_id" in params:
            args.append("--stream=studio")
        assert await run_json("analytics", *args) == from_api, params
        counts.append(from_api["count"])
    assert counts == [4, 3, 3, 1, 4, 0]
    everything = (await api.get("/api/analytics", headers=AUTH)).json()
    sessions = [await stack.store.get_session(i) for i in (first, second, third, "s-crash")]
    assert everything["total_bytes"] == sum(s.bytes_received for s in sessions if s)
    assert everything["total_viewer_seconds"] == 15.75

    code, out, _ = await run("analytics", "--stream", backup.id)
    assert code == 0
    shown = dict(re.findall(r"^([A-Za-z ]+):\s+(.*)$", out, re.M))
    backup_session = sessions[1]
    assert backup_session is not None
    assert shown["Sessions"] == "1"
    assert shown["Bytes received"].endswith(f"({backup_session.bytes_received} bytes)")
    assert shown["Ingest time"] == format_duration(backup_session.ingest_seconds)
    assert shown["Viewer time"] == "0s"
    assert shown["Stream"] == f"backup ({backup.id})"
    assert shown["Created since"] == shown["Created before"] == "(no limit)"
    _, out, _ = await run("analytics", "--since", "2026-11-21T19:24:10.5Z")
    assert re.search(r"^Created since:\s+2026-11-21 19:24:10 UTC$", out, re.M), out


def test_streams_targets_are_managed_with_their_keys_masked(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.create("studio")
    secret = "yt-0123-4567-89ab"
    added = cli.json("streams", "targets", "add", "studio", "youtube",
                     f"rtmp://a.rtmp.youtube.com/live2/{secret}")  # fmt: skip
    assert added["url"] == "rtmp://a.rtmp.youtube.com/live2/****" and not added["disabled"]
    # From standard input: the key stays out of the command line.
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"rtmps://live.twitch.tv:443/app/{secret}\n"))
    code, out, err = cli("streams", "targets", "add", "studio", "twitch", "-", "--disabled")
    assert code == 0, err
    assert re.fullmatch(
        r"Added target 'twitch' \(\S+\): rtmps://live\.twitch\.tv/app/\*\*\*\*\n", out
    )

    code, out, _ = cli("streams", "targets", "list", "studio")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NAME", "ID", "URL", "ENABLED", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == ["youtube", "twitch"]
    assert lines[2].split()[3] == "no"
    page = cli.json("streams", "targets", "list", "studio")
    assert page["total"] == 2 and page["items"][0] == added
    twitch = page["items"][1]["id"]

    assert cli.json("streams", "targets", "enable", "studio", twitch)["disabled"] is False
    assert cli.json("streams", "targets", "disable", "studio", added["id"])["disabled"] is True
    code, out, _ = cli("streams", "targets", "delete", "studio", twitch)
    assert code == 0 and out.startswith(f"Deleted target {twitch}")
    assert [t["id"] for t in cli.json("streams", "targets", "list", "studio")["items"]] == [
        added["id"]
    ]

    code, _, err = cli("streams", "targets", "add", "studio", "bad", f"http://x/live/{secret}")
    assert code == 1 and err.startswith("rtmp-ingest: invalid target: url:")
    assert secret not in err
    code, _, err = cli("streams", "targets", "disable", "studio", "nope")
    assert code == 1 and "has no target 'nope'" in err
    code, _, err = cli("streams", "targets", "list", "nope")
    assert code == 1
    everything = [cli("streams", "targets", "list", "studio")[1], err]
    assert not [text for text in everything if secret in text]


def test_streams_profiles_from_the_command_line(cli: Cli) -> None:
    created = cli.create(
        "ladder", "--profile", "360p:640x360:800000", "--profile", "240p:426x240:400000:15"
    )
    assert created["profiles"] == [
        {"name": "360p", "width": 640, "height": 360, "bitrate": 800_000, "fps": 0, "gop": None},
        {"name": "240p", "width": 426, "height": 240, "bitrate": 400_000, "fps": 15, "gop": None},
    ]
    code, out, _ = cli("streams", "show", "ladder")
    shown = dict(re.findall(r"^([A-Za-z0-9 ]+):\s+(.*)$", out, re.M))
    assert shown["Profiles"] == "360p:640x360:800000, 240p:426x240:400000:15"

    changed = cli.json("streams", "set-profiles", "ladder", "low:320x180:300000:0:2")
    assert changed["profiles"] == [
        {"name": "low", "width": 320, "height": 180, "bitrate": 300_000, "fps": 0, "gop": 2.0}
    ]
    code, out, _ = cli("streams", "set-profiles", "ladder")
    assert code == 0 and "no profiles of its own" in out
    assert cli.json("streams", "show", "ladder")["profiles"] == []

    code, out, err = cli("streams", "create", "odd", "--profile", "odd:641x360:800000")
    assert code == 1 and out == ""
    assert "invalid profiles: profiles[0] (odd): width and height must be even" in err
    code, _, err = cli("streams", "set-profiles", "ladder", "a:64x64:100000", "A:32x32:100000")
    assert code == 1 and "must be unique" in err
    assert cli.json("streams", "list")["total"] == 1


def test_sessions_show_prints_the_renditions(cli: Cli) -> None:
    stream = cli.create("studio", "--profile", "360p:640x360:800000")
    cli.insert(
        _session(
            stream["id"], "s-tr", 0, status="ended", ended_at=T0 + 65,
            profiles=[stream["profiles"][0]],
            renditions=[
                {"name": "360p", "segments": 3, "bytes": 600_000, "frames": 180,
                 "dropped_frames": 2},
            ],
            transcoded_segments=3, transcoded_segments_duration=6.0, transcoded_bytes=600_000,
        ),
    )  # fmt: skip
    code, out, _ = cli("sessions", "show", "s-tr")
    assert code == 0
    shown = dict(re.findall(r"^([A-Za-z0-9 ]+):\s+(.*)$", out, re.M))
    assert shown["Transcoded"] == f"3 segments, 6s ({format_bytes(600_000)})"
    assert (
        f"  rendition: 360p 640x360 800 kb/s: 3 segments ({format_bytes(600_000)}), "
        "180 frames, 2 dropped"
    ) in out.splitlines()
    assert cli.json("sessions", "show", "s-tr")["transcoded_segments"] == 3
    code, out, _ = cli("analytics")
    shown = dict(re.findall(r"^([A-Za-z0-9 ]+):\s+(.*)$", out, re.M))
    assert shown["Transcoded time"] == "6s"
