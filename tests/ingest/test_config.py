import dataclasses
from pathlib import Path

import pytest

from ingest.config import (
    Config,
    ConfigError,
    LogConfig,
    RtmpConfig,
    load_config,
    parse_listen,
)
from ingest.rtmp.limits import Limits
from tests.support.server import ROOT

EXAMPLE = ROOT / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path | None = None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    return info.value.errors


# --- defaults and files -------------------------------------------------------------------


def test_defaults() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert config.rtmp.listen == "0.0.0.0:1935"
    assert config.rtmp.app == "live"
    assert config.rtmp.chunk_size == 4096
    assert config.rtmp.window_ack_size == 2_500_000
    assert config.rtmp.idle_timeout == 30.0
    assert config.rtmp.max_message_size == 16 * 1024 * 1024
    assert config.rtmp.max_message_size_before_publish == 64 * 1024
    assert config.rtmp.write_buffer_limit == 1024 * 1024
    assert config.log == LogConfig(level="info", format="text")
    assert (config.rtmp.host, config.rtmp.port) == ("0.0.0.0", 1935)


def test_example_file_equals_defaults() -> None:
    assert load_config(EXAMPLE, {}) == Config()


def test_example_file_lists_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for section in dataclasses.fields(Config):
        assert f"[{section.name}]" in text
        for key in dataclasses.fields(getattr(Config(), section.name)):
            assert f"\n{key.name} = " in text, key.name


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), {}) == Config()


def test_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [rtmp]
        listen = "[::]:19350"
        app = "ingest"
        chunk_size = 60000
        idle_timeout = 15        # an integer is fine for a float key
        handshake_timeout = 2.5
        max_connections = 10

        [log]
        level = "debug"
        format = "json"
        """,
    )
    config = load_config(str(path), {})
    assert config.rtmp == RtmpConfig(
        listen="[::]:19350",
        app="ingest",
        chunk_size=60000,
        idle_timeout=15.0,
        handshake_timeout=2.5,
        max_connections=10,
    )
    assert isinstance(config.rtmp.idle_timeout, float)
    assert (config.rtmp.host, config.rtmp.port) == ("::", 19350)
    assert config.log == LogConfig(level="debug", format="json")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.errors == [f"config file not found: {path}"]


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[rtmp\nlisten = 1")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}: invalid TOML: ")


# --- environment --------------------------------------------------------------------------


def test_env_overrides() -> None:
    config = load_config(
        None,
        {
            "RTMP_INGEST_RTMP_IDLE_TIMEOUT": "15",
            "RTMP_INGEST_RTMP_MAX_CONNECTIONS": " 12 ",
            "RTMP_INGEST_RTMP_LISTEN": ":1936",
            "RTMP_INGEST_LOG_LEVEL": "debug",
            "RTMP_INGEST_CONFIG": "/etc/rtmp-ingest.toml",  # read by the CLI, ignored here
            "HOME": "/root",
        },
    )
    assert config.rtmp.idle_timeout == 15.0
    assert config.rtmp.max_connections == 12
    assert (config.rtmp.host, config.rtmp.port) == ("0.0.0.0", 1936)
    assert config.log.level == "debug"


def test_env_beats_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[rtmp]\nidle_timeout = 5\napp = "file"\n[log]\nformat = "json"\n')
    config = load_config(path, {"RTMP_INGEST_RTMP_IDLE_TIMEOUT": "7.5"})
    assert config.rtmp.idle_timeout == 7.5
    assert config.rtmp.app == "file"
    assert config.log.format == "json"


def test_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTMP_INGEST_LOG_FORMAT", "json")
    assert load_config().log.format == "json"


def test_bad_env_values_name_the_variable() -> None:
    errors = errors_of(
        environ={
            "RTMP_INGEST_RTMP_CHUNK_SIZE": "big",
            "RTMP_INGEST_RTMP_IDLE_TIMEOUT": "-1",
            "RTMP_INGEST_RTMP_HANDSHAKE_TIMEOUT": "inf",
        }
    )
    assert len(errors) == 3
    assert any(e.startswith("RTMP_INGEST_RTMP_CHUNK_SIZE") and "integer" in e for e in errors)
    assert "RTMP_INGEST_RTMP_IDLE_TIMEOUT (rtmp.idle_timeout): must be > 0, got -1" in errors
    assert any(e.startswith("RTMP_INGEST_RTMP_HANDSHAKE_TIMEOUT") for e in errors)


def test_unknown_env_variable() -> None:
    errors = errors_of(environ={"RTMP_INGEST_RTMP_IDLE_TIMEOT": "5", "RTMP_INGEST_HTTP_X": "1"})
    assert len(errors) == 2
    assert all("unknown environment variable" in e for e in errors)
    assert any(e.startswith("RTMP_INGEST_RTMP_IDLE_TIMEOT:") for e in errors)


# --- validation ---------------------------------------------------------------------------


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[rtmp]\nidle_timeout = -1\nchunk_size = 64\n[log]\nlevel = "loud"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    errors = info.value.errors
    assert len(errors) == 3
    assert "rtmp.idle_timeout: must be > 0, got -1" in errors
    assert any(e.startswith("rtmp.chunk_size:") for e in errors)
    assert any(e.startswith("log.level:") and "debug" in e for e in errors)
    assert str(info.value) == "\n".join(errors)


def test_unknown_section_and_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "stray = 1\n[rtmp]\nport = 1935\n[web]\nlisten = ':8080'\n")
    errors = errors_of(path)
    assert sorted(errors) == [
        "rtmp.port: unknown key",
        "stray: unknown top-level key",
        "web: unknown section",
    ]


def test_section_must_be_table(tmp_path: Path) -> None:
    assert errors_of(write(tmp_path, 'log = "debug"\n')) == [
        "log: expected a table [log], got string"
    ]


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ('chunk_size = "4096"', "rtmp.chunk_size"),
        ("chunk_size = 4096.0", "rtmp.chunk_size"),
        ("max_connections = true", "rtmp.max_connections"),
        ("idle_timeout = false", "rtmp.idle_timeout"),
        ('idle_timeout = "30"', "rtmp.idle_timeout"),
        ("idle_timeout = nan", "rtmp.idle_timeout"),
        ("app = 1", "rtmp.app"),
        ("listen = [1935]", "rtmp.listen"),
    ],
)
def test_wrong_types(tmp_path: Path, line: str, where: str) -> None:
    (error,) = errors_of(write(tmp_path, f"[rtmp]\n{line}\n"))
    assert error.startswith(f"{where}: ")


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    (error,) = errors_of(write(tmp_path, "[rtmp]\nmax_amf_depth = true\n"))
    assert error == "rtmp.max_amf_depth: expected an integer, got boolean True"


@pytest.mark.parametrize(
    "line",
    [
        "chunk_size = 127",
        "chunk_size = 65537",
        "handshake_timeout = 0",
        "max_message_size = 0",
        "max_chunk_streams = -3",
        "write_buffer_limit = 0",
        'listen = "1935"',
        'listen = "::1:1935"',
        'app = ""',
    ],
)
def test_ranges(tmp_path: Path, line: str) -> None:
    (error,) = errors_of(write(tmp_path, f"[rtmp]\n{line}\n"))
    assert error.startswith("rtmp." + line.split(" ")[0] + ": ")


def test_chunk_size_bounds_are_inclusive(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "[rtmp]\nchunk_size = 128\n"), {}).rtmp.chunk_size == 128
    env = {"RTMP_INGEST_RTMP_CHUNK_SIZE": "65536"}
    assert load_config(None, env).rtmp.chunk_size == 65536


def test_before_publish_size_at_most_message_size(tmp_path: Path) -> None:
    path = write(
        tmp_path, "[rtmp]\nmax_message_size = 100000\nmax_message_size_before_publish = 100001\n"
    )
    (error,) = errors_of(path)
    assert error == (
        "rtmp.max_message_size_before_publish: must be <= rtmp.max_message_size (100000), "
        "got 100001"
    )


def test_pending_connections_stay_below_max_connections(tmp_path: Path) -> None:
    path = write(tmp_path, "[rtmp]\nmax_connections = 200\nmax_pending_connections = 200\n")
    (error,) = errors_of(path)
    assert error == (
        "rtmp.max_pending_connections: must be < rtmp.max_connections (200) so that "
        "publishers always find room, got 200"
    )
    ok = load_config(
        write(tmp_path, "[rtmp]\nmax_connections = 200\nmax_pending_connections = 199\n"), {}
    )
    assert ok.rtmp.pending_limit == 199


def test_pending_limit_defaults_to_a_quarter_of_max_connections() -> None:
    assert load_config(None, {}).rtmp.pending_limit == 1024
    env = {"RTMP_INGEST_RTMP_MAX_CONNECTIONS": "200"}
    assert load_config(None, env).rtmp.pending_limit == 50
    assert load_config(None, {"RTMP_INGEST_RTMP_MAX_CONNECTIONS": "2"}).rtmp.pending_limit == 1


def test_publish_timeout_at_least_the_handshake_timeout(tmp_path: Path) -> None:
    (error,) = errors_of(write(tmp_path, "[rtmp]\npublish_timeout = 5\n"))
    assert error == "rtmp.handshake_timeout: must be <= rtmp.publish_timeout (5.0), got 10.0"


def test_partial_bytes_hold_one_message(tmp_path: Path) -> None:
    (error,) = errors_of(environ={"RTMP_INGEST_RTMP_MAX_PARTIAL_BYTES": "1000000"})
    assert error.startswith("rtmp.max_message_size: must be <= rtmp.max_partial_bytes")


def test_cross_check_skipped_when_a_key_is_already_wrong(tmp_path: Path) -> None:
    path = write(tmp_path, "[rtmp]\nmax_message_size = -1\nmax_message_size_before_publish = 9\n")
    assert errors_of(path) == ["rtmp.max_message_size: must be > 0, got -1"]


def test_config_error_from_one_string() -> None:
    exc = ConfigError("config file not found: x.toml")
    assert exc.errors == ["config file not found: x.toml"]
    assert str(exc) == "config file not found: x.toml"


# --- listen addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.0.0.0:1935", ("0.0.0.0", 1935)),
        (":1935", ("0.0.0.0", 1935)),
        ("127.0.0.1:19350", ("127.0.0.1", 19350)),
        ("localhost:0", ("localhost", 0)),
        ("ingest.example.com:65535", ("ingest.example.com", 65535)),
        ("[::]:1935", ("::", 1935)),
        ("[::1]:0", ("::1", 0)),
        ("[2001:db8::2]:1935", ("2001:db8::2", 1935)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1935",
        "localhost",
        "localhost:",
        "localhost:http",
        "localhost:-1",
        "localhost:65536",
        "localhost:1935 ",
        "::1:1935",
        "[::1]",
        "[::1]1935",
        "[nothost]:1935",
        "[::1:1935",
        "bad host:1935",
        "host/x:1935",
        "0.0.0.0:\u0661\u0669\u0663\u0665",
    ],
)
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ValueError, match="invalid listen address"):
        parse_listen(value)


# --- limits -------------------------------------------------------------------------------


def test_limits_default_mapping() -> None:
    assert RtmpConfig().limits() == Limits()


def test_limits_mapping() -> None:
    rtmp = RtmpConfig(
        handshake_timeout=3.0,
        max_message_size=1_000_000,
        max_message_size_before_publish=10_000,
        max_partial_bytes=2_000_000,
        max_chunk_streams=8,
        max_amf_depth=4,
    )
    assert rtmp.limits() == Limits(
        handshake_timeout=3.0,
        max_message_size=1_000_000,
        max_message_size_before_publish=10_000,
        max_partial_bytes=2_000_000,
        max_chunk_streams=8,
        max_amf_depth=4,
        max_amf_items=Limits().max_amf_items,
        max_unparsed_bytes=1_000_000 + 64 * 1024,
    )


# --- transcode ----------------------------------------------------------------------------


def test_transcode_keys_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [transcode]
        default_profiles = "360p:640x360:800000, 240p:426x240:400000:15:2"
        preset = "faster"
        encoder = "libx264"
        processes = 2
        """,
    )
    config = load_config(path, {"RTMP_INGEST_TRANSCODE_MAX_LAG": "2.5"})
    assert (config.transcode.preset, config.transcode.encoder) == ("faster", "libx264")
    assert (config.transcode.processes, config.transcode.max_lag) == (2, 2.5)
    assert [str(p) for p in config.transcode.default_ladder] == [
        "360p:640x360:800000",
        "240p:426x240:400000:15:2",
    ]
    assert load_config(None, {}).transcode.default_ladder == ()


def test_a_bad_default_ladder_is_a_config_error_that_says_why(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [transcode]
        default_profiles = "360p:641x360:800000"
        preset = "warp"
        """,
    )
    errors = errors_of(path, {"RTMP_INGEST_TRANSCODE_ENCODER": "gpu"})
    assert errors == [
        "transcode.default_profiles: profiles[0] (360p): width and height must be even, "
        "got 641x360",
        "transcode.preset: must be one of ultrafast, superfast, veryfast, faster, fast, "
        "medium, slow, slower, veryslow; got 'warp'",
        "RTMP_INGEST_TRANSCODE_ENCODER (transcode.encoder): must be one of auto, libx264, "
        "nvenc; got 'gpu'",
    ]


# --- RTMPS and multistream ------------------------------------------------------------------


def _rtmps(tmp_path: Path, cert: str, key: str, listen: str = ":1936") -> Path:
    return write(
        tmp_path,
        f'[rtmps]\nlisten = "{listen}"\ncert_file = "{cert}"\nkey_file = "{key}"\n',
    )


def test_rtmps_with_a_certificate_and_its_key(tmp_path: Path) -> None:
    from tests.support.certs import make_certificate

    cert = make_certificate(tmp_path / "tls")
    config = load_config(_rtmps(tmp_path, str(cert.cert_file), str(cert.key_file)), {})
    assert config.rtmps.enabled and config.rtmps.port == 1936
    assert not load_config(None, {}).rtmps.enabled


def test_rtmps_certificate_problems_are_config_errors(tmp_path: Path) -> None:
    from tests.support.certs import make_certificate

    cert = make_certificate(tmp_path / "tls", "one")
    other = make_certificate(tmp_path / "tls", "two")
    (error,) = errors_of(_rtmps(tmp_path, str(cert.cert_file), str(other.key_file)))
    assert error.startswith("rtmps.cert_file: the key in")
    assert "does not belong to the certificate" in error
    (error,) = errors_of(_rtmps(tmp_path, str(tmp_path / "missing.crt"), str(cert.key_file)))
    assert "cannot read" in error and "missing.crt" in error
    (error,) = errors_of(_rtmps(tmp_path, str(cert.key_file), str(cert.key_file)))
    assert "holds no PEM certificate" in error
    errors = errors_of(write(tmp_path, '[rtmps]\nlisten = ":1936"\n'))
    assert errors == [
        "rtmps.cert_file: must be set when rtmps.listen is (a PEM file)",
        "rtmps.key_file: must be set when rtmps.listen is (a PEM file)",
    ]


def test_rtmps_needs_a_port_of_its_own(tmp_path: Path) -> None:
    from tests.support.certs import make_certificate

    cert = make_certificate(tmp_path / "tls")
    path = _rtmps(tmp_path, str(cert.cert_file), str(cert.key_file), listen=":1935")
    assert errors_of(path) == ["rtmps.listen: must be another port than rtmp.listen (0.0.0.0:1935)"]
    (error,) = errors_of(environ={"RTMP_INGEST_RTMPS_LISTEN": "nowhere"})
    assert error.startswith("RTMP_INGEST_RTMPS_LISTEN (rtmps.listen): invalid listen address")


def test_multistream_keys(tmp_path: Path) -> None:
    config = load_config(None, {})
    assert config.multistream.max_buffer == 8 * 1024 * 1024
    assert (config.multistream.retry_min, config.multistream.retry_max) == (1.0, 30.0)
    errors = errors_of(
        environ={
            "RTMP_INGEST_MULTISTREAM_RETRY_MIN": "60",
            "RTMP_INGEST_MULTISTREAM_MAX_BUFFER": "1000",
        }
    )
    assert errors == [
        "RTMP_INGEST_MULTISTREAM_MAX_BUFFER (multistream.max_buffer): must be >= 65536, got 1000",
        "multistream.retry_min: must be <= multistream.retry_max (30.0), got 60.0",
    ]
    path = write(tmp_path, f'[multistream]\nca_file = "{tmp_path / "none.pem"}"\n')
    (error,) = errors_of(path)
    assert error.startswith("multistream.ca_file: cannot read")
