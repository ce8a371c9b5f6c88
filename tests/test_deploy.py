"""The systemd units in deploy/: what they say, and that systemd itself accepts them."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ingest.config import load_config, parse_listen
from sessions.http.routes_metrics import METRIC_NAMES, histogram_names

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SERVICE = "rtmp-ingest.service"
SOCKETS = ("rtmp-ingest-rtmp.socket", "rtmp-ingest-http.socket", "rtmp-ingest-rtmps.socket")
UNITS = (SERVICE, *SOCKETS)
INSTALLED_BINARY = "/opt/rtmp-ingest/venv/bin/rtmp-ingest"
EXEC_START = f"{INSTALLED_BINARY} serve --config ${{CONFIGURATION_DIRECTORY}}/config.toml"

#: What systemd says about settings it does not understand or cannot use.
_COMPLAINTS = re.compile(
    r"unknown (key|section|lvalue)|ignoring|failed to parse|invalid|not found|"
    r"unsupported|deprecated|obsolete",
    re.IGNORECASE,
)


def _settings(name: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment in a unit file, in order."""
    section = ""
    found: list[tuple[str, str, str]] = []
    for raw in (DEPLOY / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{name}: not an assignment: {raw!r}"
        found.append((section, key.strip(), value.strip()))
    return found


def _values(name: str, section: str, key: str) -> list[str]:
    return [v for s, k, v in _settings(name) if (s, k) == (section, key)]


def _one(name: str, section: str, key: str) -> str:
    values = _values(name, section, key)
    assert len(values) == 1, f"{name}: [{section}] {key}= set {len(values)} times"
    return values[0]


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail("systemd-analyze is missing: install Debian's systemd package")
    return found


def _test_binary() -> str:
    """An executable that exists here, to stand in for the installed rtmp-ingest."""
    beside = Path(sys.executable).parent / "rtmp-ingest"
    if beside.is_file():
        return str(beside)
    return shutil.which("rtmp-ingest") or sys.executable


@pytest.fixture
def unit_dir(tmp_path: Path) -> Path:
    """Copies of the units, with ExecStart pointing at a binary that exists here (verify
    checks that it does)."""
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        if name == SERVICE:
            assert INSTALLED_BINARY in text
            text = text.replace(INSTALLED_BINARY, _test_binary())
        (tmp_path / name).write_text(text)
    return tmp_path


def test_service_runs_the_installed_binary_with_the_config_directory() -> None:
    assert _one(SERVICE, "Service", "ExecStart") == EXEC_START
    assert _one(SERVICE, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert _one(SERVICE, "Service", "ConfigurationDirectory") == "rtmp-ingest"
    assert _one(SERVICE, "Service", "StateDirectory") == "rtmp-ingest"
    assert _one(SERVICE, "Service", "WorkingDirectory") == "%S/rtmp-ingest"
    assert _values(SERVICE, "Service", "Environment") == [
        "RTMP_INGEST_STORAGE_DATA_DIR=%S/rtmp-ingest"
    ]


def test_service_notifies_and_is_watched() -> None:
    assert _one(SERVICE, "Service", "Type") == "notify"
    assert _one(SERVICE, "Service", "NotifyAccess") == "main"
    assert _one(SERVICE, "Service", "WatchdogSec") == "30"
    assert _one(SERVICE, "Service", "Restart") == "on-failure"
    assert _one(SERVICE, "Install", "WantedBy") == "multi-user.target"


def test_service_hardening() -> None:
    for key, value in {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallArchitectures": "native",
        "MemoryDenyWriteExecute": "yes",
        "UMask": "0077",
    }.items():
        assert _one(SERVICE, "Service", key) == value, key
    assert _values(SERVICE, "Service", "SystemCallFilter") == [
        "@system-service",
        "~@privileged @resources",
    ]


@pytest.mark.parametrize(
    ("name", "port", "fd_name"),
    [(SOCKETS[0], "1935", "rtmp"), (SOCKETS[1], "8080", "http"), (SOCKETS[2], "1936", "rtmps")],
)
def test_sockets_name_their_descriptor_for_the_service(name: str, port: str, fd_name: str) -> None:
    assert _one(name, "Socket", "ListenStream") == port
    assert _one(name, "Socket", "FileDescriptorName") == fd_name
    assert _one(name, "Socket", "Service") == SERVICE
    assert _values(name, "Socket", "Accept") in ([], ["no"])
    assert _one(name, "Install", "WantedBy") == "sockets.target"


def test_example_config_is_valid() -> None:
    path = DEPLOY / "config.toml"
    with path.open("rb") as fh:
        tomllib.load(fh)
    config = load_config(path, environ={})
    assert config.rtmp.port == 1935
    assert parse_listen(config.http.listen)[1] == 8080
    assert config.storage.data_dir == "/var/lib/rtmp-ingest"


@pytest.mark.slow
def test_systemd_analyze_verify(unit_dir: Path) -> None:
    proc = subprocess.run(
        [_systemd_analyze(), "verify", "--man=no", *(str(unit_dir / n) for n in UNITS)],
        capture_output=True,
        text=True,
        cwd=unit_dir,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    print(output)
    assert proc.returncode == 0, output
    complaints = [line for line in output.splitlines() if _COMPLAINTS.search(line)]
    assert not complaints, output


@pytest.mark.slow
def test_systemd_analyze_security(unit_dir: Path) -> None:
    proc = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit_dir / SERVICE)],
        capture_output=True,
        text=True,
        cwd=unit_dir,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and "offline" in output.lower():
        print(f"systemd-analyze security --offline is not supported here:\n{output}")
        return
    assert proc.returncode == 0, output
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)", output)
    assert match, output
    score = float(match.group(1))
    print(f"systemd-analyze security: exposure {score} {match.group(2)}")
    assert score < 3.0, output
    assert match.group(2) in ("OK", "SAFE", "PERFECT"), output


#: Settings that carry a stop or restart of one unit over to another (systemd.unit(5)):
#: on a socket naming the service, any of them would close the port while the service
#: restarts. (``Requires=`` and ``Requisite=`` count: the service is then "RequiredBy" the
#: socket, and a stop of the service propagates to it.)
_PROPAGATING_ON_SOCKET = ("PartOf", "BindsTo", "Requires", "Requisite", "StopPropagatedFrom")
#: The same links declared from the service's side.
_PROPAGATING_ON_SERVICE = ("PropagatesStopTo", "RequiredBy", "UpheldBy")


@pytest.mark.parametrize("name", SOCKETS)
def test_sockets_stay_bound_while_the_service_restarts(name: str) -> None:
    settings = _settings(name)
    assert [(s, k, v) for s, k, v in settings if k in _PROPAGATING_ON_SOCKET] == []
    linked = [
        (s, k, v) for s, k, v in _settings(SERVICE) if k in _PROPAGATING_ON_SERVICE and name in v
    ]
    assert linked == []


def _systemd_run_command(readme: Path) -> list[str]:
    """The one ``systemd-run`` command line of *readme*, continuation lines joined."""
    lines = readme.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("systemd-run ")]
    assert len(starts) == 1, f"{readme}: {len(starts)} systemd-run command lines"
    command = ""
    for line in lines[starts[0] :]:
        command += line.strip()
        if not command.endswith("\\"):
            break
        command = command[:-1] + " "
    return shlex.split(command)


def _options(command: list[str], flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for before, value in itertools.pairwise(command):
        if before == flag:
            key, _, setting = value.partition("=")
            found[key] = setting
    return found


@pytest.mark.slow
def test_both_readmes_give_the_same_cli_command_and_it_matches_the_service(
    tmp_path: Path,
) -> None:
    command = _systemd_run_command(DEPLOY / "README.md")
    assert _systemd_run_command(DEPLOY.parent / "README.md") == command
    # The CLI runs as the service's dynamic user, with its directories and environment.
    assert _options(command, "-p") == {
        "DynamicUser": "yes",
        "User": SERVICE.removesuffix(".service"),
        "StateDirectory": _one(SERVICE, "Service", "StateDirectory"),
    }
    service_env = dict(v.split("=", 1) for v in _values(SERVICE, "Service", "Environment"))
    config_dir = "/etc/" + _one(SERVICE, "Service", "ConfigurationDirectory")
    exec_config = EXEC_START.split("--config ", 1)[1]
    environment = _options(command, "-E")
    assert environment == {
        "RTMP_INGEST_STORAGE_DATA_DIR": service_env["RTMP_INGEST_STORAGE_DATA_DIR"].replace(
            "%S", "/var/lib"
        ),
        "RTMP_INGEST_CONFIG": exec_config.replace("${CONFIGURATION_DIRECTORY}", config_dir),
    }
    binary = command.index(INSTALLED_BINARY)
    assert command[binary + 1 :] == ["$@"]
    # What it runs works with that environment (here on a data directory of the test's).
    environment["RTMP_INGEST_STORAGE_DATA_DIR"] = str(tmp_path / "state")
    environment["RTMP_INGEST_CONFIG"] = str(DEPLOY / "config.toml")
    for args in (["streams", "create", "studio"], ["streams", "list", "--json"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ingest", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **environment},
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    assert [s["name"] for s in json.loads(proc.stdout)["items"]] == ["studio"]
    assert (tmp_path / "state" / "rtmp-ingest.db").is_file()


def test_the_grafana_dashboard_shows_every_exported_metric_and_no_other() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs
    assert all(panel["datasource"]["type"] == "prometheus" for panel in dashboard["panels"])
    used = {name for expr in exprs for name in re.findall(r"\brtmp_ingest_[a-z_]+", expr)}
    histograms = set(histogram_names())
    suffixes = ("bucket", "sum", "count")
    series = set(METRIC_NAMES) | {f"{h}_{s}" for h in histograms for s in suffixes}
    assert used <= series, used - series
    shown = {name for name in used if name in METRIC_NAMES} | {
        h for h in histograms if any(name.startswith(h) for name in used)
    }
    assert shown == set(METRIC_NAMES)
