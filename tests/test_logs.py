import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from ingest.logs import EventFormatter, configure_logging, log_event

TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
