"""The ``[auth]`` and ``[webhooks]`` keys: defaults, checks, and environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    config = load_config(None, {})
    assert config.auth.mode == "keys" and config.auth.http_url == ""
    assert config.auth.http_timeout == 2.0 and config.auth.http_on_error == "deny"
    assert config.auth.http_cache == 0.0
    assert config.webhooks.timeout == 5.0
    assert (config.webhooks.retry_min, config.webhooks.retry_max) == (1.0, 3600.0)
    assert config.webhooks.give_up_after == 86400.0


def test_http_mode_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"auth\.http_url: must be set"):
        load_config(write(tmp_path, '[auth]\nmode = "http"\n'), {})
    config = load_config(
        write(tmp_path, '[auth]\nmode = "http"\nhttp_url = "https://auth.example.com/p"\n'), {}
    )
    assert config.auth.mode == "http"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[auth]\nmode = "nginx"\n', "auth.mode"),
        ('[auth]\nhttp_url = "ftp://x/"\n', "http:// or https://"),
        ('[auth]\nhttp_url = "http://"\n', "with a host"),
        ('[auth]\nhttp_on_error = "maybe"\n', "auth.http_on_error"),
        ("[auth]\nhttp_timeout = 0\n", "auth.http_timeout"),
        ("[auth]\nhttp_cache = -1\n", "auth.http_cache"),
        ("[webhooks]\ntimeout = 0\n", "webhooks.timeout"),
        ("[webhooks]\nretry_min = 10.0\nretry_max = 5.0\n", "webhooks.retry_max"),
        ("[webhooks]\ngive_up_after = 0\n", "webhooks.give_up_after"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert words in str(info.value)


def test_environment_overrides() -> None:
    config = load_config(
        None,
        {
            "RTMP_INGEST_AUTH_MODE": "http",
            "RTMP_INGEST_AUTH_HTTP_URL": "http://127.0.0.1:9000/auth",
            "RTMP_INGEST_WEBHOOKS_RETRY_MAX": "60",
        },
    )
    assert config.auth.http_url == "http://127.0.0.1:9000/auth"
    assert config.webhooks.retry_max == 60.0
