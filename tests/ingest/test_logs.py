import asyncio
import io
import json
import logging
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.config import ConfigError, load_config
from ingest.logs import OWN_LOGGERS, EventFormatter, apply_log_config, configure_logging, log_event
from sessions.streams import Streams
from storage import Store
from tests.support.media import make_flv, publish_with_ffmpeg
from tests.support.server import serve_config, start_server

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
#: Library loggers the tests below set levels on.
LIBRARIES = ("aiosqlite", "uvicorn", "uvicorn.error", "asyncio", "httpx")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in (*OWN_LOGGERS, *LIBRARIES)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


def lines_of(stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return text[:-1].split("\n")


def test_text_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream)
    log_event(
        logging.getLogger("ingest.server"),
        logging.INFO,
        "publish_rejected",
        remote="1.2.3.4:5678",
        reason="bad key",
        bytes=0,
        ok=False,
    )
    (line,) = lines_of(stream)
    assert re.fullmatch(
        f"ts={TS} level=info logger=ingest.server event=publish_rejected "
        r'remote=1\.2\.3\.4:5678 reason="bad key" bytes=0 ok=false',
        line,
    )


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ("", '""'),
        ("a=b", '"a=b"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ("line1\nline2\r\n", r'"line1\nline2\r\n"'),
        ("tab\there", r'"tab\there"'),
        ("nul\x00", r'"nul\u0000"'),
        ("sep\u2028x", r'"sep\u2028x"'),
        ("café", "café"),
        (None, '""'),
        (1.5, "1.5"),
    ],
)
def test_text_quoting(value: object, written: str) -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream)
    log_event(logging.getLogger("t"), logging.WARNING, "ev", value=value)
    (line,) = lines_of(stream)
    assert line.endswith(f" level=warning logger=t event=ev value={written}")


def test_plain_logger_call_is_one_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream)
    logging.getLogger("ingest.x").info("listening on %s\nnext", ":1935")
    (line,) = lines_of(stream)
    assert line.endswith(r' logger=ingest.x event="listening on :1935\nnext"')


def test_level_filters() -> None:
    stream = io.StringIO()
    configure_logging("warning", "text", stream)
    logger = logging.getLogger("t")
    log_event(logger, logging.INFO, "hidden")
    log_event(logger, logging.ERROR, "shown")
    (line,) = lines_of(stream)
    assert "event=shown" in line


def test_reserved_field_names_are_kept_apart() -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream)
    log_event(logging.getLogger("t"), logging.INFO, "ev", level="x", event="y")
    (line,) = lines_of(stream)
    assert line.endswith(" level=info logger=t event=ev level_=x event_=y")


def test_json_line() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    log_event(
        logging.getLogger("ingest.server"),
        logging.INFO,
        "publish_started",
        remote="[::1]:5000",
        note='multi\nline "quoted"',
        count=3,
        rate=float("nan"),
        obj=object,
    )
    (line,) = lines_of(stream)
    record = json.loads(line)
    assert re.fullmatch(TS, record.pop("ts"))
    assert record == {
        "level": "info",
        "logger": "ingest.server",
        "event": "publish_started",
        "remote": "[::1]:5000",
        "note": 'multi\nline "quoted"',
        "count": 3,
        "rate": "nan",
        "obj": str(object),
    }


def boom() -> None:
    raise ValueError("bad\nthing")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_exception_is_one_line_without_traceback(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging("info", fmt, stream)
    try:
        boom()
    except ValueError:
        logging.getLogger("t").exception("failed")
    (line,) = lines_of(stream)
    assert "Traceback" not in line
    if fmt == "json":
        assert json.loads(line)["exc"] == "ValueError: bad\nthing"
    else:
        assert line.endswith(r' event=failed exc="ValueError: bad\nthing"')


def test_traceback_at_debug_stays_on_one_line() -> None:
    stream = io.StringIO()
    configure_logging("debug", "text", stream)
    try:
        boom()
    except ValueError as exc:
        log_event(logging.getLogger("t"), logging.ERROR, "failed", exc_info=exc, peer="p")
    (line,) = lines_of(stream)
    assert " peer=p exc=" in line
    assert 'traceback="Traceback (most recent call last):\\n' in line
    assert "boom" in line


def test_reconfigure_replaces_own_handler_only() -> None:
    other = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "text", first)
    configure_logging("info", "json", second)
    logging.getLogger("t").info("hello")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["event"] == "hello"
    assert other in root.handlers


def test_defaults_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    logging.getLogger("t").warning("to stderr")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert 'event="to stderr"' in captured.err


def test_rejects_unknown_level_and_format() -> None:
    with pytest.raises(ValueError):
        configure_logging("trace")
    with pytest.raises(ValueError):
        configure_logging("info", "xml")
    with pytest.raises(ValueError):
        EventFormatter("yaml")


def _debug_and_info(stream: io.StringIO, *names: str) -> dict[str, list[str]]:
    """Log one debug and one info line on each logger; the levels that came out, by name."""
    start = len(stream.getvalue())
    for name in names:
        logging.getLogger(name).debug("d")
        logging.getLogger(name).info("i")
    found: dict[str, list[str]] = {name: [] for name in names}
    for line in stream.getvalue()[start:].splitlines():
        match = re.search(r" level=(\w+) logger=(\S+) ", line)
        assert match, line
        found[match.group(2)].append(match.group(1))
    return found


def test_debug_level_keeps_library_loggers_at_info() -> None:
    stream = io.StringIO()
    configure_logging("debug", "text", stream)
    found = _debug_and_info(stream, "ingest.listener", "sessions.manager", "storage.x", *LIBRARIES)
    for own in ("ingest.listener", "sessions.manager", "storage.x"):
        assert found[own] == ["debug", "info"], own
    for library in LIBRARIES:
        assert found[library] == ["info"], library


def test_debug_loggers_are_logged_at_debug_whatever_the_level() -> None:
    stream = io.StringIO()
    configure_logging("info", "text", stream, debug_loggers=["aiosqlite", "uvicorn"])
    found = _debug_and_info(stream, "aiosqlite", "uvicorn.error", "httpx", "ingest.listener")
    assert found == {
        "aiosqlite": ["debug", "info"],
        "uvicorn.error": ["debug", "info"],
        "httpx": ["info"],
        "ingest.listener": ["info"],
    }
    # A reconfiguration (a reload) that no longer names them puts them back.
    configure_logging("debug", "text", stream)
    found = _debug_and_info(stream, "aiosqlite", "uvicorn.error", "ingest.listener")
    assert found == {
        "aiosqlite": ["info"],
        "uvicorn.error": ["info"],
        "ingest.listener": ["debug", "info"],
    }


def test_a_stricter_level_applies_to_libraries_too() -> None:
    stream = io.StringIO()
    configure_logging("warning", "text", stream)
    found = _debug_and_info(stream, "aiosqlite", "ingest.listener")
    assert found == {"aiosqlite": [], "ingest.listener": []}


def test_debug_loggers_config_key() -> None:
    config = load_config(
        None, environ={"RTMP_INGEST_LOG_DEBUG_LOGGERS": " aiosqlite, uvicorn.error,"}
    )
    assert config.log.debug_logger_names == ("aiosqlite", "uvicorn.error")
    assert load_config(None, environ={}).log.debug_logger_names == ()
    stream = io.StringIO()
    apply_log_config(config.log, stream)
    assert _debug_and_info(stream, "aiosqlite")["aiosqlite"] == ["debug", "info"]
    for bad in ("aio sqlite", "a;b", "uvicorn..error"):
        with pytest.raises(ConfigError, match=r"log\.debug_loggers"):
            load_config(None, environ={"RTMP_INGEST_LOG_DEBUG_LOGGERS": bad})


async def _wait_for_line(log: Path, pattern: str, after: int = 0) -> int:
    """Wait until the log has a line matching *pattern* past offset *after*; its end."""
    async with asyncio.timeout(30):
        while True:
            text = log.read_text()
            match = re.compile(pattern, re.M).search(text, after)
            if match:
                return match.end()
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_debug_server_logs_no_statements_until_asked(tmp_path: Path) -> None:
    """A real server at ``level = "debug"``: a publish writes the server's own debug lines
    and none of aiosqlite's; after a reload naming aiosqlite, a publish brings them."""
    config = serve_config(tmp_path)
    base = config.read_text()
    config.write_text(base + '[log]\nlevel = "debug"\n')
    store = await Store.open(tmp_path / "data" / "rtmp-ingest.db")
    _, key = await Streams(store).create("cam")
    await store.close()
    source = make_flv(tmp_path / "clip.flv", seconds=1)
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        proc, port, _ = await start_server(config, stderr=sink)
        try:
            url = f"rtmp://127.0.0.1:{port}/live/{key}"
            assert await publish_with_ffmpeg(source, url) == 0
            first = await _wait_for_line(log, r"event=session_ended")
            config.write_text(base + '[log]\nlevel = "debug"\ndebug_loggers = "aiosqlite"\n')
            proc.send_signal(signal.SIGHUP)
            reloaded = await _wait_for_line(
                log, r"event=reloaded changed=log\.debug_loggers", first
            )
            assert await publish_with_ffmpeg(source, url) == 0
            await _wait_for_line(log, r"event=session_ended", reloaded)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
    text = log.read_text()
    before, after = text[:first], text[reloaded:]
    assert "level=debug logger=ingest.listener " in before
    assert "logger=aiosqlite" not in before
    assert re.search(r"^\S+ level=debug logger=aiosqlite ", after, re.M), after
