"""The operator console in a real headless Chromium, against a real server process with
real ffmpeg publishers: sign-in, Live now (its polling, its player, kick), creating a
stream and publishing to the key it showed, a session's page against the API, the stream
actions, the sessions list's filters and paging, the server page, a phone's width.

One server and one browser for the module; the tests run in order, each on what the
ones before left (a live session, a stream, its recorded session). Every test ends with
the browser's console free of errors. Screenshots of each page go to
``test-output/console/`` (see the README), with ``timings.json``: how long a publish took
to appear on Live now.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from bench.media import make_flv
from sessions.http import routes_console
from tests.sessions.http.browser import console_errors, start_chromium, wait_for

#: A browser and a server, and the tests run in order on one console: all of them or none.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "test-output" / "console"
#: The console's poll interval (sessions/http/console/js/live.js), milliseconds.
POLL_MS = 1000
#: Fields of a session shown in their own sections of its page, not as counters.
SECTIONS = {"tracks", "issues", "gaps", "recording_url", "mp4_url"}
#: What publishers are told to paste as OBS's Server.
INGEST_URL = "rtmp://ingest.example/live"
#: How the pages write "320x240" and "1-25 of 80" (a multiplication sign, an en dash).
TIMES = "\u00d7"
DASH = "\u2013"
#: The one error the browser logs on a wrong token: the API's 401.
REFUSED = "api/status - Failed to load resource: the server responded with a status of 401"


@dataclass
class Server:
    """``rtmp-ingest serve`` in a process of its own."""

    process: subprocess.Popen[str]
    url: str
    rtmp_port: int
    default_key: str
    token: str
    log: Path

    def rtmp(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def get(self, path: str, **params: str | int) -> Any:
        response = httpx.get(
            self.url + path,
            params=params or None,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


@dataclass
class Console:
    """The browser on the console, and what the tests hand on to each other."""

    driver: WebDriver
    server: Server
    clip: Path
    publishers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def open(self, page: str) -> None:
        self.driver.get(f"{self.server.url}/#/{page}")

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        """The text of the first element *css* selects; "" while there is none (a page
        being drawn again)."""
        try:
            return self.driver.find_element(By.CSS_SELECTOR, css).text
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    def click(self, css: str) -> None:
        """Clicks the first element *css* selects, once the page has drawn it."""

        def clicked() -> bool:
            self.driver.find_element(By.CSS_SELECTOR, css).click()
            return True

        wait_for(clicked, f"{css} to click")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

    def confirm(self) -> None:
        """Presses the confirming button of the open dialog."""
        wait_for(lambda: self.finds("dialog[open] button[value=confirm]"), "a confirmation")
        self.find("dialog[open] button[value=confirm]").click()
        wait_for(lambda: not self.finds("dialog[open]"), "the dialog to close")

    def publish(
        self, key: str, *, realtime: bool, seconds: float | None = None
    ) -> subprocess.Popen[bytes]:
        """ffmpeg pushing the clip (its first *seconds*) to *key*, at its pace if
        *realtime*; at once otherwise (which a segmenter takes only for a few seconds)."""
        pace = ["-re"] if realtime else []
        length = [] if seconds is None else ["-t", str(seconds)]
        process = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", *pace,
             "-i", str(self.clip), *length, "-c", "copy", "-f", "flv", self.server.rtmp(key)],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.publishers.append(process)
        return process

    def assert_no_errors(self, *allowed: str) -> None:
        assert console_errors(self.driver, allowed) == []


def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _start_server(folder: Path) -> Server:
    token = secrets.token_urlsafe(24)
    config = folder / "config.toml"
    config.write_text(
        "\n".join(
            [
                "[rtmp]",
                'listen = "127.0.0.1:0"',
                "[http]",
                'listen = "127.0.0.1:0"',
                f'public_rtmp_url = "{INGEST_URL}"',
                f'admin_token = "{token}"',
                "[storage]",
                f'data_dir = "{folder / "data"}"',
            ]
        )
        + "\n"
    )
    log = folder / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
        )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    seen = ""
    deadline = time.monotonic() + 60
    while (match := re.search(r"RTMP on [\d.]+:(\d+); HTTP API on ([\d.:]+)", seen)) is None:
        try:
            seen += lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            raise AssertionError(f"the server did not start: {seen}{log.read_text()}") from None
    key = re.search(r"Stream Key: (\S+)", seen)
    assert key, seen
    return Server(process, f"http://{match.group(2)}", int(match.group(1)), key[1], token, log)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    clip = make_flv(folder / "clip.flv", seconds=40, fps=25, gop=25, size=(320, 240))
    server = _start_server(folder)
    publishers: list[subprocess.Popen[bytes]] = []
    try:
        driver = start_chromium(folder / "profile")
        try:
            yield Console(driver, server, clip, publishers)
        finally:
            driver.quit()
    finally:
        for publisher in publishers:
            with contextlib.suppress(ProcessLookupError):
                publisher.kill()
            publisher.wait()
        server.process.send_signal(signal.SIGTERM)
        try:
            assert server.process.wait(30) == 0, server.log.read_text()
        except subprocess.TimeoutExpired:
            server.process.kill()
            raise


def _sign_in(console: Console, token: str) -> None:
    field_ = wait_for(lambda: console.finds("#token"), "the sign-in form")[0]
    wait_for(field_.is_displayed, "the sign-in form to show")
    field_.clear()
    field_.send_keys(token, Keys.ENTER)


def _value(element: WebElement) -> Any:
    return json.loads(element.get_attribute("data-value") or "null")


def _card_values(console: Console, session_id: str) -> dict[str, Any] | None:
    cards = console.finds(f'#live-list .card[data-session-id="{session_id}"]')
    if not cards:
        return None
    return {
        dd.get_attribute("data-field"): _value(dd)
        for dd in cards[0].find_elements(By.CSS_SELECTOR, "dd")
    }


def test_a_wrong_token_is_refused(console: Console) -> None:
    console.driver.get(console.server.url + "/")
    field_ = wait_for(lambda: console.finds("#token"), "the sign-in form")[0]
    assert field_.get_attribute("type") == "password"
    console.screenshot("sign-in")
    _sign_in(console, "not-the-" + console.server.token)
    error = wait_for(lambda: console.text("#sign-in-error"), "the refusal")
    assert error == "Wrong token: the server refused it."
    assert not console.find("#bar").is_displayed()
    assert console.js("return sessionStorage.length") == 0
    assert "not-the-" not in console.driver.current_url
    # The browser logs the API's 401 answer; nothing else.
    console.assert_no_errors(REFUSED)


def test_sign_in_keeps_the_token_in_session_storage_only(console: Console) -> None:
    _sign_in(console, console.server.token)
    wait_for(lambda: console.finds("#live-page"), "Live now")
    assert console.find("#bar").is_displayed()
    assert console.driver.current_url == console.server.url + "/#/live"
    stored = console.js("return Object.values(sessionStorage)")
    assert stored == [console.server.token]
    assert console.js("return Object.values(localStorage)") == []
    requested = console.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/api/" in url for url in requested)
    assert not [url for url in requested if console.server.token in url]
    # The pages are reached from the keyboard: Tab to a link, Enter.
    body = console.find("body")
    for _ in range(10):
        body.send_keys(Keys.TAB)
        if console.js("return document.activeElement.dataset.page") == "streams":
            break
    console.driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(lambda: console.finds("#streams-page"), "the Streams page")
    console.open("live")
    console.assert_no_errors()


def test_a_live_publish_appears_on_live_now_with_moving_counters(console: Console) -> None:
    wait_for(lambda: console.finds("#live-page"), "Live now")
    page = console.find("#live-page")
    assert page.get_attribute("data-poll-ms") == str(POLL_MS)
    started = time.monotonic()
    console.publish(console.server.default_key, realtime=True)
    card = wait_for(lambda: console.finds("#live-list .card"), "the session on Live now")[0]
    appeared = time.monotonic() - started
    session_id = card.get_attribute("data-session-id")
    assert session_id
    console.state["live_session"] = session_id
    assert card.find_element(By.CSS_SELECTOR, "h2").text == "default"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "timings.json").write_text(
        json.dumps({"publish_to_live_now_seconds": round(appeared, 3), "poll_ms": POLL_MS})
    )
    print(f"publish to Live now: {appeared:.3f} s (polling every {POLL_MS} ms)")
    # Each poll replaces the counters with the API's: received bytes and duration grow.
    first = _card_values(console, session_id)
    assert first is not None
    updates = int(page.get_attribute("data-updates") or 0)
    later = wait_for(
        lambda: (
            (v := _card_values(console, session_id))
            and v["bytes_received"] > first["bytes_received"]
            and v["duration"] > first["duration"]
            and v
        ),
        "the counters to move",
    )
    assert int(page.get_attribute("data-updates") or 0) > updates
    api = console.server.get(f"/api/sessions/{session_id}")
    assert api["bytes_received"] >= later["bytes_received"]
    card = console.find(f'#live-list .card[data-session-id="{session_id}"]')
    assert f"320{TIMES}240 25 fps H264" in card.text
    assert "AAC" in card.text
    assert "healthy" in card.text
    # The server has reconnect windows: the card counts the reconnects (none yet).
    reconnects = card.find_element(By.CSS_SELECTOR, '[data-field="reconnects"]')
    assert reconnects.is_displayed() and api["reconnects"] == 0
    # A button keeps the keyboard focus while the polls redraw the card around it.
    kick = card.find_element(By.CSS_SELECTOR, ".kick")
    console.js("arguments[0].focus()", kick)
    seen = int(page.get_attribute("data-updates") or 0)
    wait_for(lambda: int(page.get_attribute("data-updates") or 0) >= seen + 2, "two more polls")
    assert console.js("return document.activeElement === arguments[0]", kick)
    console.assert_no_errors()


def test_the_player_plays_five_seconds_without_errors(console: Console) -> None:
    def position() -> float:
        return float(console.js("return document.getElementById('player').currentTime"))

    start = wait_for(lambda: position() or None, "the player to start", timeout=60)
    wait_for(lambda: position() >= start + 5.0, "five seconds of media to play", timeout=60)
    video = console.find("#player")
    assert video.get_attribute("data-errors") == "0", video.get_attribute("data-last-error")
    assert console.find("#player-status").text == "Player: playing"
    graph = console.find("#rate-graph")
    wait_for(lambda: int(graph.get_attribute("data-samples") or 0) >= 2, "the graph's samples")
    assert console.finds("#rate-graph canvas")
    console.screenshot("live-now")
    console.assert_no_errors()


def test_kick_ends_the_session_and_it_leaves_the_list(console: Console) -> None:
    session_id = console.state["live_session"]
    console.find(f'#live-list .card[data-session-id="{session_id}"] .kick').click()
    console.confirm()
    wait_for(lambda: not console.finds("#live-list .card"), "the card to leave the list")
    assert console.find("#live-empty").is_displayed()
    ended = console.server.get(f"/api/sessions/{session_id}")
    assert (ended["status"], ended["end_reason"]) == ("ended", "kicked")
    assert console.publishers[-1].wait(30) != 0  # ffmpeg was disconnected
    assert console.find("#player-status").text == "Player: idle"
    console.assert_no_errors()


def test_a_stream_created_in_the_form_takes_a_publish_to_its_key(console: Console) -> None:
    console.open("streams")
    name = wait_for(lambda: console.finds("#stream-name"), "the form")[0]
    name.send_keys("studio")
    console.find("#stream-record").click()
    console.find("#create-stream button[type=submit]").click()
    key = wait_for(lambda: console.finds("#obs-key"), "the key panel")[0].get_attribute("value")
    server = console.find("#obs-server").get_attribute("value")
    assert key
    console.state["studio_key"] = key
    assert server == INGEST_URL
    assert "shown only this once" in console.find("#key-panel").text
    console.find('#key-panel button[aria-label="Copy Stream Key"]').click()
    wait_for(lambda: "Stream Key" in console.text("#notice"), "the copy to be confirmed")
    publisher = console.publish(key, realtime=False, seconds=6)
    assert publisher.wait(60) == 0
    sessions = wait_for(
        lambda: (page := console.server.get("/api/streams/studio/sessions"))["total"] and page,
        "the session",
    )
    session = sessions["items"][0]
    console.state["studio_session"] = session["id"]
    console.state["studio_stream"] = session["stream_id"]
    assert session["record"] is True
    console.find("#key-panel button.quiet:not([aria-label])").click()  # Done
    assert not console.finds("#obs-key")
    wait_for(lambda: console.text(f'{STUDIO_ROW} [data-field="record"]') == "on", "the row")
    console.screenshot("streams")
    console.assert_no_errors()


def test_a_sessions_page_shows_the_same_numbers_as_the_api(console: Console) -> None:
    session_id = console.state["studio_session"]
    api = wait_for(
        lambda: (
            (s := console.server.get(f"/api/sessions/{session_id}"))["recording_status"] == "ready"
            and s
        ),
        "the recording",
    )
    console.open(f"sessions?stream_id={api['stream_id']}")
    console.click(f'#sessions-table tr[data-session-id="{session_id}"] a')
    wait_for(lambda: console.finds('#session-page[data-loaded="true"]'), "the session's page")
    shown = {
        dd.get_attribute("data-field"): _value(dd) for dd in console.finds("#session-counters dd")
    }
    assert shown == {name: value for name, value in api.items() if name not in SECTIONS}
    counters = console.find("#session-counters").text
    assert f"{api['bytes_received']:,} B" in counters
    assert f"{api['media_bytes']:,} B" in counters
    assert f"{api['duration']} s" in counters
    for row, track in zip(console.finds("#session-tracks tbody tr"), api["tracks"], strict=True):
        cells = {
            td.get_attribute("data-field"): _value(td)
            for td in row.find_elements(By.CSS_SELECTOR, "td")
        }
        assert cells == {name: track.get(name) for name in cells}
        assert set(track) <= set(cells)
    segments = wait_for(lambda: console.finds("#segments-table tbody tr"), "the segments")
    assert len(segments) == api["source_segments"]
    issues = console.find("#session-issues").text
    assert [issue["code"] for issue in api["issues"]] == [] and issues == "None."
    mp4 = console.find("#mp4-link").get_attribute("href")
    assert mp4 == f"{console.server.url}/recordings/{api['playback_id']}/{session_id}/recording.mp4"
    head = httpx.head(mp4)
    assert (head.status_code, head.headers["content-type"]) == (200, "video/mp4")
    wait_for(
        lambda: console.js("return document.getElementById('recording-player').currentTime") > 1,
        "the recording to play",
        timeout=60,
    )
    assert console.find("#recording-player").get_attribute("data-errors") == "0"
    console.screenshot("session")
    console.assert_no_errors()


STUDIO_ROW = '#streams-table tr[data-stream-name="studio"]'


def _stream(console: Console) -> dict[str, Any]:
    stream: dict[str, Any] = console.server.get(f"/api/streams/{console.state['studio_stream']}")
    return stream


def test_stream_actions_change_the_stream(console: Console) -> None:
    console.open("streams")
    console.click(f"{STUDIO_ROW} button.record")
    wait_for(lambda: _stream(console)["record"] is False, "recording off")
    wait_for(lambda: console.finds(f'{STUDIO_ROW} button.record[aria-pressed="false"]'), "row")
    console.click(f"{STUDIO_ROW} button.disable")
    console.confirm()
    wait_for(lambda: _stream(console)["disabled"] is True, "the stream disabled")
    console.click(f"{STUDIO_ROW} button.enable")
    wait_for(lambda: _stream(console)["disabled"] is False, "the stream enabled")
    console.click(f"{STUDIO_ROW} button.rotate")
    console.confirm()
    new_key = wait_for(lambda: console.finds("#obs-key"), "the new key")[0].get_attribute("value")
    assert new_key not in (None, "", console.state["studio_key"])
    assert console.find("#key-title").text == "New key for “studio”"
    # A delete asks first; Escape keeps the stream.
    console.click(f"{STUDIO_ROW} button.delete")
    dialog = wait_for(lambda: console.finds("dialog[open]"), "the confirmation")[0]
    assert "Delete studio?" in dialog.text
    dialog.send_keys(Keys.ESCAPE)
    wait_for(lambda: not console.finds("dialog[open]"), "the dialog to close")
    assert _stream(console)["name"] == "studio"
    console.click(f"{STUDIO_ROW} button.delete")
    console.confirm()
    wait_for(lambda: not console.finds(STUDIO_ROW), "the row to go")
    listed = console.server.get("/api/streams")
    assert [s["name"] for s in listed["items"]] == ["default"]
    console.assert_no_errors()


def test_the_sessions_list_filters_and_pages(console: Console) -> None:
    everything = console.server.get("/api/sessions")
    assert everything["total"] == 2
    console.open("sessions?limit=1")
    rows = wait_for(lambda: console.finds("#sessions-table tbody tr[data-session-id]"), "a page")
    assert rows[0].get_attribute("data-session-id") == everything["items"][0]["id"]
    assert console.find(".pager span").text == f"1{DASH}1 of 2"
    console.click(".pager button:last-child")
    wait_for(lambda: console.text(".pager span") == f"2{DASH}2 of 2", "the next page")
    rows = console.finds("#sessions-table tbody tr[data-session-id]")
    assert rows[0].get_attribute("data-session-id") == everything["items"][1]["id"]
    # Filters: by stream, by status, by time.
    console.open("sessions")
    wait_for(lambda: len(console.finds("#filter-stream option")) == 2, "the streams")
    # Statuses as the server's document lists them, reconnecting with the windows.
    statuses = [o.get_attribute("value") for o in console.finds("#filter-status option")]
    assert statuses == ["", "live", "reconnecting", "ended"]
    default = console.server.get("/api/streams/default")
    console.find(f'#filter-stream option[value="{default["id"]}"]').click()
    console.find('#filter-status option[value="ended"]').click()
    console.find("#session-filters button[type=submit]").click()
    wait_for(lambda: "stream_id=" in console.driver.current_url, "the filtered page")
    wait_for(lambda: console.text(".pager span") == f"1{DASH}1 of 1", "one session")
    shown = console.find("#sessions-table tbody tr").get_attribute("data-session-id")
    assert shown == console.state["live_session"]
    console.screenshot("sessions")
    console.open("sessions?until=2000-01-01T00:00:00Z")
    wait_for(lambda: console.finds('.pager span[data-total="0"]'), "no session")
    assert console.find(".pager span").text == f"0{DASH}0 of 0"
    assert console.find("#filter-until").get_attribute("value") == "2000-01-01T00:00"
    console.assert_no_errors()


def test_the_server_page_shows_status_and_analytics(console: Console) -> None:
    console.open("server")
    version = wait_for(lambda: console.finds('#server-status [data-field="version"]'), "status")[0]
    assert version.text == console.server.get("/api/status")["version"]
    console.find('#analytics-period option[value="all"]').click()
    totals = console.server.get("/api/analytics")
    assert totals["count"] == 2
    wait_for(
        lambda: (
            console.finds('#analytics-totals [data-field="until"]')
            and console.text('#analytics-totals [data-field="since"]') == "—"
        ),
        "all-time totals",
    )
    assert console.find('#analytics-totals [data-field="count"]').text == "2"
    total_bytes = console.find('#analytics-totals [data-field="total_bytes"]').text
    assert f"{totals['total_bytes']:,} B" in total_bytes
    console.screenshot("server")
    console.assert_no_errors()


def test_every_page_fits_a_phone_width(console: Console) -> None:
    console.driver.set_window_size(390, 844)
    try:
        pages = {"live": "#live-page", "streams": "#streams-table", "sessions": "#sessions-table",
                 f"session/{console.state['live_session']}": '#session-page[data-loaded="true"]',
                 "server": "#analytics-totals .fact"}  # fmt: skip
        for page, ready in pages.items():
            console.open(page)
            wait_for(lambda ready=ready: console.finds(ready), f"the {page} page")
            overflow = console.js(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{page} is {overflow} px wider than the screen"
        console.screenshot("phone-session")
        console.open("live")
        wait_for(lambda: console.finds("#live-empty"), "Live now")
        console.screenshot("phone-live-now")
    finally:
        console.driver.set_window_size(1280, 1000)
    console.assert_no_errors()


@contextlib.contextmanager
def _api_with_reconnects(sessions: list[dict[str, Any]], token: str) -> Iterator[str]:
    """The console in front of a stand-in API that speaks like a server with reconnect
    windows: a "reconnecting" status in its document, sessions with ``reconnects``,
    ``gaps`` and ``gap_seconds``. Yields its URL."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)  # its own document below
    app.include_router(routes_console.router)
    document = {
        "paths": {
            "/api/sessions": {
                "get": {
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {
                                "anyOf": [
                                    {"enum": ["live", "reconnecting", "ended"], "type": "string"},
                                    {"type": "null"},
                                ]
                            },
                        }
                    ]
                }
            }
        }
    }

    def authorized(request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {token}":
            raise HTTPException(401)

    @app.get("/api/status", dependencies=[Depends(authorized)])
    async def status() -> dict[str, Any]:
        return {"version": "next"}

    @app.get("/openapi.json", dependencies=[Depends(authorized)])
    async def openapi() -> dict[str, Any]:
        return document

    @app.get("/api/sessions", dependencies=[Depends(authorized)])
    async def listed(status: str | None = None) -> dict[str, Any]:
        items = [s for s in sessions if status in (None, s["status"])]
        return {"items": items, "total": len(items), "offset": 0, "limit": 1000}

    @app.get("/api/sessions/{session_id}", dependencies=[Depends(authorized)])
    async def one(session_id: str) -> dict[str, Any]:
        return next(s for s in sessions if s["id"] == session_id)

    @app.get("/api/streams", dependencies=[Depends(authorized)])
    async def streams() -> dict[str, Any]:
        return {"items": [], "total": 0, "offset": 0, "limit": 1000}

    # log_config=None: uvicorn leaves the process's logging (and other tests') alone.
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-with-reconnects", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "the stand-in API")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_reconnecting_sessions_and_gaps_show_when_the_api_has_them(console: Console) -> None:
    """The session fields a reconnect window brings are shown where the API sends them."""
    ended = console.server.get(f"/api/sessions/{console.state['live_session']}")
    base = {**ended, "record": False, "recording_status": None, "source_segments": 0}
    gap = {"from": "2026-11-21T19:24:10.123Z", "to": "2026-11-21T19:24:14.623Z", "seconds": 4.5}
    sessions = [
        {**base, "id": "s-live", "status": "live", "reconnects": 0, "gaps": [], "gap_seconds": 0},
        {**base, "id": "s-back", "name": "field-cam", "status": "reconnecting",
         "reconnects": 1, "gaps": [gap], "gap_seconds": 4.5},
    ]  # fmt: skip
    token = secrets.token_urlsafe(16)
    with _api_with_reconnects(sessions, token) as url:
        console.driver.get(url + "/")
        _sign_in(console, token)
        card = wait_for(lambda: console.finds('.card[data-session-id="s-back"]'), "the card")[0]
        assert card.find_element(By.CSS_SELECTOR, ".badge").text == "reconnecting"
        facts = {
            dd.get_attribute("data-field"): dd for dd in card.find_elements(By.CSS_SELECTOR, "dd")
        }
        assert facts["reconnects"].is_displayed() and facts["reconnects"].text == "1"
        assert facts["gap_seconds"].text == "4.5 s"
        console.find('.card[data-session-id="s-back"] .watch').click()
        wait_for(lambda: "reconnecting" in console.text("#player-status"), "the player")
        console.driver.get(url + "/#/session/s-back")
        wait_for(lambda: console.finds('#session-page[data-loaded="true"]'), "the session")
        assert [td.text for td in console.finds("#session-gaps td")] == [
            "2026-11-21 19:24:10 UTC",
            "2026-11-21 19:24:14 UTC",
            "4.5",
        ]
        shown = {
            dd.get_attribute("data-field"): _value(dd)
            for dd in console.finds("#session-counters dd")
        }
        assert (shown["reconnects"], shown["gap_seconds"], shown["status"]) == (
            1,
            4.5,
            "reconnecting",
        )
        console.driver.get(url + "/#/sessions")
        wait_for(lambda: console.finds('#filter-status option[value="reconnecting"]'), "the filter")
        console.screenshot("reconnecting")
        console.driver.execute_script("sessionStorage.clear()")
    console.assert_no_errors()
