"""scripts/test.sh, the one command that sets up and runs the tests, and .ci/run, which
must run the README's commands exactly."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "test.sh"
#: What the script runs before it knows what is missing (and nothing more: no python3 either,
#: as on a minimal Debian).
_TOOLS_BEFORE_THE_CHECK = ("bash", "env", "dirname", "readlink", "id")


def _readme_test_commands() -> list[str]:
    """The commands of the README's "Running the tests" section, one per item."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Running the tests", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, section
    return [
        command.strip()
        for block in blocks
        for line in block.splitlines()
        for command in line.split(" && ")
        if command.strip()
    ]


def _ci_commands() -> list[str]:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands[:2] == [
        "set -euo pipefail",
        'cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."',
    ]
    return commands[2:]


def test_ci_runs_exactly_the_readme_commands() -> None:
    assert _readme_test_commands() == [
        "scripts/test.sh",
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/mypy",
    ]
    assert _ci_commands() == _readme_test_commands()


@pytest.mark.slow
def test_the_script_is_executable_and_parses() -> None:
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    assert (ROOT / ".ci" / "run").stat().st_mode & stat.S_IXUSR
    bash = shutil.which("bash")
    assert bash is not None
    for path in (SCRIPT, ROOT / ".ci" / "run"):
        proc = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def bare_checkout() -> Iterator[Path]:
    """A copy of the script in a checkout-shaped folder any user can read, and a folder of
    the few real tools it needs before its check: no python3, ffmpeg, systemd-analyze,
    chromium, chromedriver or sudo."""
    with tempfile.TemporaryDirectory(prefix="rtmp-ingest-setup-") as name:
        top = Path(name)
        top.chmod(0o755)
        (top / "repo" / "scripts").mkdir(parents=True)
        shutil.copy2(SCRIPT, top / "repo" / "scripts" / "test.sh")
        tools = top / "bin"
        tools.mkdir()
        for tool in _TOOLS_BEFORE_THE_CHECK:
            found = shutil.which(tool)
            assert found is not None, tool
            (tools / tool).symlink_to(os.path.realpath(found))
        for path in (top / "repo", top / "repo" / "scripts"):
            path.chmod(0o755)
        yield top


@pytest.mark.slow
def test_missing_packages_without_root_or_sudo_are_named_and_nothing_is_made(
    bare_checkout: Path,
) -> None:
    script = bare_checkout / "repo" / "scripts" / "test.sh"
    command = [str(bare_checkout / "bin" / "bash"), str(script), "-x"]
    if os.geteuid() == 0:  # drop to an ordinary user, as a developer runs it
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (Debian's util-linux) is needed as root"
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={"PATH": str(bare_checkout / "bin"), "LC_ALL": "C.UTF-8"},
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    missing = "python3 python3-venv ffmpeg systemd chromium chromium-driver"
    assert f"the tests need Debian's {missing}, which are missing" in proc.stderr
    assert f"    apt-get install {missing}\n" in proc.stderr
    assert not (bare_checkout / "repo" / ".venv").exists()
