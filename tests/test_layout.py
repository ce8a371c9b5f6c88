"""The packages' import rule (README: Layout), read from every module's imports.

Only the shell (``ingest.server``) imports ``sessions``; ``sessions`` may import, of
``ingest``, only the package itself (its version), the events of the protocol core and its
URLs (``ingest.rtmp.events``, ``ingest.rtmp.url``), ``ingest.flv``, ``ingest.hooks``,
``ingest.logs``, and the configuration with the profiles it checks (``ingest.config``,
``ingest.profiles``); ``storage`` imports neither; and the
sans-IO core (``ingest.rtmp``, ``ingest.flv``) imports no asyncio and no PyAV. Every import
counts: at the top, inside a function, or for type checking only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support.server import ROOT

PACKAGES = ("ingest", "sessions", "storage")
SHELL = "ingest.server"
#: ``python -m ingest`` runs the shell's command line: it is the shell's too.
SHELL_ENTRY = "ingest.__main__"
#: What ``sessions`` may import of ``ingest`` (each with its submodules).
SESSIONS_MAY_IMPORT = (
    "ingest.rtmp.events",
    "ingest.rtmp.url",
    "ingest.flv",
    "ingest.hooks",
    "ingest.logs",
    "ingest.config",
    "ingest.profiles",
)
SANS_IO = ("ingest.rtmp", "ingest.flv")
NOT_IN_SANS_IO = ("asyncio", "av")


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(root: Path) -> Iterator[tuple[str, str, int]]:
    """(module, what it imports, line) for every import of every module of the packages."""
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(root, path)
            is_package = path.name == "__init__.py"
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield module, alias.name, node.lineno
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = module.split(".")
                        keep = len(base) - node.level + (1 if is_package else 0)
                        prefix = ".".join(base[:keep])
                        target = f"{prefix}.{node.module}" if node.module else prefix
                    else:
                        target = node.module or ""
                    yield module, target, node.lineno
                    # ``from ingest import hooks`` imports ingest.hooks.
                    for alias in node.names:
                        yield module, f"{target}.{alias.name}", node.lineno


def _allowed_for_sessions(target: str) -> bool:
    if target == "ingest":
        return True
    if target.startswith("ingest.") and target.count(".") == 1:
        # ``from ingest import X``: X is a name of the package (its version) unless it is
        # one of its modules, which the rule then judges.
        name = target.split(".")[1]
        if name == "__version__":
            return True
    return any(_within(target, allowed) for allowed in SESSIONS_MAY_IMPORT)


def violations(root: Path) -> list[str]:
    """One line per import statement that breaks the rule."""
    found: dict[tuple[str, int], str] = {}
    for module, target, line in imports(root):
        if (module, line) not in found and (problem := _problem(module, target)):
            found[module, line] = f"{module}:{line} imports {target}: {problem}"
    return list(found.values())


def _problem(module: str, target: str) -> str | None:
    if _within(module, SHELL) or module == SHELL_ENTRY:
        return None
    if any(_within(module, core) for core in SANS_IO) and any(
        _within(target, banned) for banned in NOT_IN_SANS_IO
    ):
        return "the sans-IO core imports no asyncio or PyAV"
    if _within(module, "ingest") and (
        _within(target, "sessions") or _within(target, "storage") or _within(target, SHELL)
    ):
        return "only the shell (ingest.server) imports sessions"
    if (
        _within(module, "sessions")
        and _within(target, "ingest")
        and not _allowed_for_sessions(target)
    ):
        return "sessions may not import that part of ingest"
    if _within(module, "storage") and (_within(target, "ingest") or _within(target, "sessions")):
        return "storage imports neither ingest nor sessions"
    return None


def test_the_packages_keep_the_import_rule() -> None:
    assert violations(ROOT) == []


def test_the_rule_is_read_from_every_kind_of_import(tmp_path: Path) -> None:
    """The check finds what breaks the rule, wherever the import is written."""
    files = {
        "ingest/__init__.py": "__version__ = '0'\n",
        "ingest/listener.py": "def f():\n    from sessions.manager import SessionManager\n",
        "ingest/rtmp/__init__.py": "",
        "ingest/rtmp/core.py": "import asyncio\nfrom . import events\n",
        "ingest/rtmp/events.py": "",
        "ingest/flv/__init__.py": "from av import open\n",
        "ingest/server/__init__.py": "",
        "ingest/server/app.py": "import sessions.manager\nimport storage\n",
        "sessions/__init__.py": "",
        "sessions/manager.py": (
            "from typing import TYPE_CHECKING\n"
            "from ingest import __version__\n"
            "from ingest.rtmp.events import EndCause\n"
            "from ingest import listener\n"
            "if TYPE_CHECKING:\n    from ingest.server.app import IngestServer\n"
        ),
        "storage/__init__.py": "",
        "storage/store.py": "from sessions import manager\n",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    found = violations(tmp_path)
    assert sorted(line.split(" imports ")[0] for line in found) == [
        "ingest.flv:1",
        "ingest.listener:2",
        "ingest.rtmp.core:1",
        "sessions.manager:4",
        "sessions.manager:6",
        "storage.store:1",
    ], found
    assert "sessions.manager:4 imports ingest.listener" in "\n".join(found)
