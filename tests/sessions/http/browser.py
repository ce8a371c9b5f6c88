"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, which
``scripts/test.sh`` installs) driven with Selenium, for the operator console's tests."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

#: Without these a sandboxed test machine's Chromium waits on connections it cannot make
#: (updates, sync, QUIC probes) and on the sandbox it cannot set up as root.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
)

T = TypeVar("T")


def _tool(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    raise AssertionError(
        f"{names[0]} is needed for the console's browser tests: install Debian's chromium "
        "and chromium-driver (scripts/test.sh does)"
    )


def start_chromium(profile: Path, width: int = 1280, height: int = 1000) -> WebDriver:
    """A headless Chromium with a new, empty profile in *profile*, its console log kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = _tool("chromium", "chromium-browser")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(_tool("chromedriver")))


def console_errors(driver: WebDriver, allowed: tuple[str, ...] = ()) -> list[str]:
    """The errors the page logged since the last call (script errors, failed loads, CSP
    violations), but those containing one of *allowed*."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allowed)
    ]


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """The first truthy answer of *check*, polled every 50 ms; an element missing or
    replaced while the page draws it again counts as not yet. The deadline is generous:
    it only stops a test that would otherwise hang."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (NoSuchElementException, StaleElementReferenceException):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
