"""Server configuration: a TOML file, environment overrides, validation.

Every key has a default, so an absent or empty file is a valid configuration. Values come
from the file first, then from ``RTMP_INGEST_<SECTION>_<KEY>`` environment variables (which
win), and are validated together: :class:`ConfigError` lists every problem at once.

The sections and keys are read from the dataclasses below, so adding a key is one line:
declare the field with :func:`_key`, its default, its checks, and ``restart=True`` if a
running server cannot take a new value without a restart (:data:`RESTART_KEYS`).
"""

import dataclasses
import ipaddress
import math
import os
import re
import ssl
import tomllib
import typing
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ingest.profiles import Profile, ProfileError, parse_profiles
from ingest.rtmp.limits import Limits
from ingest.tls import certificate_problem

__all__ = [
    "ENV_PREFIX",
    "RESTART_KEYS",
    "Config",
    "ConfigError",
    "HlsConfig",
    "HttpConfig",
    "LogConfig",
    "MultistreamConfig",
    "RtmpConfig",
    "RtmpsConfig",
    "SessionsConfig",
    "StorageConfig",
    "TranscodeConfig",
    "changed_keys",
    "load_config",
    "parse_listen",
]

#: Prefix of the environment variables that override config keys.
ENV_PREFIX = "RTMP_INGEST_"
#: Variables under the prefix that are not config keys (read elsewhere, e.g. by the CLI).
_RESERVED_ENV = frozenset({"RTMP_INGEST_CONFIG"})

_KiB = 1024
_MiB = 1024 * _KiB

_Check = Callable[[Any], str | None]
_T = TypeVar("_T")


class ConfigError(Exception):
    """The configuration is unusable; :attr:`errors` names every problem found."""

    def __init__(self, errors: str | Iterable[str]) -> None:
        self.errors: list[str] = [errors] if isinstance(errors, str) else list(errors)
        super().__init__(*self.errors)

    def __str__(self) -> str:
        return "\n".join(self.errors)


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` into its parts.

    ``":1935"`` means all IPv4 interfaces (``"0.0.0.0"``); IPv6 hosts go in brackets
    (``"[::]:1935"``, returned as ``"::"``); port 0 asks the OS for a free port.
    """
    if not isinstance(value, str):
        raise ValueError(f"listen address must be a string, got {type(value).__name__}")
    where = f"invalid listen address {value!r}"
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{where}: expected [IPV6]:PORT, e.g. [::]:1935")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{where}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ValueError(f"{where}: expected HOST:PORT, e.g. 0.0.0.0:1935")
        if ":" in host:
            raise ValueError(f"{where}: put IPv6 addresses in brackets, e.g. [::]:1935")
        if not host:
            host = "0.0.0.0"
        elif not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{where}: {host!r} is not a valid host name or address")
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"{where}: port must be a number from 0 to 65535")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{where}: port must be a number from 0 to 65535")
    return host, port


# --- checks -------------------------------------------------------------------------------


def _key(default: _T, *checks: _Check, restart: bool = False) -> _T:
    """A config key: its default, the checks its value must pass, and whether a reload
    cannot apply it (the server must restart to take a new value)."""
    return field(default=default, metadata={"checks": checks, "restart": restart})


def _positive(value: Any) -> str | None:
    return None if value > 0 else f"must be > 0, got {value!r}"


def _between(low: int, high: int) -> _Check:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be {low}..{high}, got {value!r}"

    return check


def _one_of(*choices: str) -> _Check:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f"must be one of {', '.join(choices)}; got {value!r}"

    return check


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


def _non_empty(value: Any) -> str | None:
    return None if value else "must not be empty"


_LOGGER_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")


def _split_logger_names(value: str) -> tuple[str, ...]:
    """The logger names of a comma-separated list ("aiosqlite, uvicorn.error")."""
    return tuple(name for part in value.split(",") if (name := part.strip()))


def _logger_names(value: Any) -> str | None:
    bad = [name for name in _split_logger_names(value) if not _LOGGER_NAME.fullmatch(name)]
    if bad:
        return (
            f'expected logger names separated by commas, e.g. "aiosqlite, uvicorn"; got {bad[0]!r}'
        )
    return None


def _profile_list(value: Any) -> str | None:
    try:
        parse_profiles(value)
    except ProfileError as exc:
        return str(exc)
    return None


#: libx264's presets, fastest first.
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


def _listen(value: Any) -> str | None:
    try:
        parse_listen(value)
    except ValueError as exc:
        return str(exc)
    return None


def _listen_or_off(value: Any) -> str | None:
    return None if value == "" else _listen(value)


def _at_least(low: int) -> _Check:
    def check(value: Any) -> str | None:
        return None if value >= low else f"must be >= {low}, got {value!r}"

    return check


# --- the configuration --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtmpConfig:
    """The RTMP listener and the per-connection limits."""

    #: HOST:PORT to accept publishers on ("[::]:1935" for IPv6, port 0 = any free port).
    listen: str = _key("0.0.0.0:1935", _listen, restart=True)
    #: Application name publishers use (rtmp://HOST/live/KEY).
    app: str = _key("live", _non_empty)
    #: Size of the chunks we send, bytes.
    chunk_size: int = _key(4096, _between(128, 65536))
    #: Window Acknowledgement Size and Set Peer Bandwidth we announce, bytes.
    window_ack_size: int = _key(2_500_000, _between(1, 0xFFFFFFFF))
    #: Seconds for the whole handshake.
    handshake_timeout: float = _key(10.0, _positive)
    #: Seconds from accepting a connection until it publishes (handshake, commands and the
    #: key check together); one not publishing by then is closed, however it paces its bytes.
    publish_timeout: float = _key(20.0, _positive)
    #: Seconds without a byte from a peer before it is dropped (half-open publishers).
    idle_timeout: float = _key(30.0, _positive)
    #: Connections open at once; more are refused.
    max_connections: int = _key(4096, _positive)
    #: Connections not yet publishing (handshake, commands, key check) open at once; more
    #: are refused, so that they never fill max_connections. 0: a quarter of it.
    max_pending_connections: int = _key(0, _non_negative)
    #: Of those, from one address (an IPv6 /64 counts as one); more are refused.
    max_pending_per_address: int = _key(32, _positive)
    #: Largest message once publishing, bytes.
    max_message_size: int = _key(16 * _MiB, _positive)
    #: Largest message before publishing (commands only), bytes.
    max_message_size_before_publish: int = _key(64 * _KiB, _positive)
    #: Bytes of half-assembled messages per connection.
    max_partial_bytes: int = _key(32 * _MiB, _positive)
    #: Chunk stream ids in use at once per connection.
    max_chunk_streams: int = _key(64, _positive)
    #: Deepest nesting of AMF0 objects and arrays.
    max_amf_depth: int = _key(16, _positive)
    #: Outgoing bytes queued per connection before we stop reading from it.
    write_buffer_limit: int = _key(1 * _MiB, _positive)
    #: Seconds between reads from a publishing connection: what arrives meanwhile waits in
    #: the kernel and is taken in one read, so a stream costs fewer reads and wake-ups;
    #: media and commands wait up to this long once publishing. 0 reads at once.
    read_interval: float = _key(0.05, _non_negative)
    #: Processes that accept publishers, sharing the port (SO_REUSEPORT); 1 runs everything
    #: in one process. Each runs its own listener, sessions and segmenters.
    processes: int = _key(1, _between(1, 256), restart=True)

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def pending_limit(self) -> int:
        """Connections not yet publishing allowed at once (``max_pending_connections``, or
        a quarter of ``max_connections`` when that is 0)."""
        return self.max_pending_connections or max(1, self.max_connections // 4)

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]

    def limits(self) -> Limits:
        """The protocol core's per-connection limits."""
        return Limits(
            max_message_size_before_publish=self.max_message_size_before_publish,
            max_message_size=self.max_message_size,
            max_partial_bytes=self.max_partial_bytes,
            max_chunk_streams=self.max_chunk_streams,
            max_amf_depth=self.max_amf_depth,
            max_unparsed_bytes=self.max_message_size + 64 * _KiB,
            handshake_timeout=self.handshake_timeout,
            publish_timeout=self.publish_timeout,
        )


@dataclass(frozen=True, slots=True)
class RtmpsConfig:
    """RTMPS: RTMP over TLS on a second address, with the same limits and sessions."""

    #: HOST:PORT to accept RTMPS publishers on (e.g. ":1936", or ":443"); empty: off.
    listen: str = _key("", _listen_or_off, restart=True)
    #: The certificate (PEM; the server's first, then any intermediates).
    cert_file: str = _key("")
    #: Its private key (PEM). Both files are read again on reload (SIGHUP).
    key_file: str = _key("")

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


@dataclass(frozen=True, slots=True)
class MultistreamConfig:
    """Forwarding a live stream to other RTMP servers (see README, Multistream)."""

    #: Bytes queued for one target that does not keep up; past it, media is skipped up to
    #: the next keyframe (and counted as skipped).
    max_buffer: int = _key(8 * _MiB, _at_least(64 * _KiB))
    #: Seconds a target has to accept a connection and start the publish (TCP, TLS,
    #: handshake, connect, createStream, publish).
    connect_timeout: float = _key(10.0, _positive)
    #: Seconds a live target may take no bytes at all, with bytes waiting for it, before
    #: its connection is dropped and made again.
    stall_timeout: float = _key(15.0, _positive)
    #: Seconds before the first retry of a target that failed; doubled at every failure.
    retry_min: float = _key(1.0, _positive)
    #: The longest wait between retries, seconds.
    retry_max: float = _key(30.0, _positive)
    #: CA certificates (PEM) rtmps:// targets are verified against; empty: the system's.
    ca_file: str = _key("")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Log output (see :mod:`ingest.logs`)."""

    #: Least severe level written.
    level: str = _key("info", _one_of("debug", "info", "warning", "error"))
    #: "text" (key=value pairs) or "json" (one object per line).
    format: str = _key("text", _one_of("text", "json"))
    #: Loggers (comma-separated) logged at debug whatever ``level`` is; libraries' own
    #: loggers otherwise stay at info or above (see :mod:`ingest.logs`).
    debug_loggers: str = _key("", _logger_names)

    @property
    def debug_logger_names(self) -> tuple[str, ...]:
        return _split_logger_names(self.debug_loggers)


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    """Who may publish, what happens when a key is already live, and the ledger's rhythm."""

    #: "replace": a new publisher on a live key ends the old one (a half-open old connection
    #: never locks the encoder out); "reject": the new one is refused while the old is live.
    duplicate_publish: str = _key("replace", _one_of("replace", "reject"))
    #: Seconds between writes of live sessions' counters to the store.
    flush_interval: float = _key(1.0, _positive)
    #: Seconds of recent traffic the ingest rate is averaged over.
    rate_window: float = _key(5.0, _positive)
    #: Seconds a refused publisher waits (at least) before its error status and close.
    reject_delay_min: float = _key(0.2, _non_negative)
    #: Seconds a refused publisher waits (at most); the delay is random in between.
    reject_delay_max: float = _key(1.0, _non_negative)
    #: Refused publishes from one address within throttle_window before it is throttled.
    throttle_failures: int = _key(10, _positive)
    #: Seconds over which refused publishes are counted; a throttled address is refused
    #: at once, without a key check, until its failures age out of the window.
    throttle_window: float = _key(60.0, _positive)
    #: Seconds a session waits, "reconnecting", after its publisher's connection dropped
    #: without the encoder saying it stopped (TCP close or reset, idle timeout, protocol
    #: error): a publish on the same stream within them continues the same session. 0:
    #: the session ends at once.
    reconnect_window: float = _key(10.0, _non_negative)
    #: Live health: seconds without a frame before a track that was sending is
    #: no_video / no_audio.
    health_track_stopped: float = _key(5.0, _positive)
    #: Live health: the share of its own 30 s average under which the ingest rate (or
    #: the video frame rate) over 5 s is bitrate_drop (fps_drop); 0 turns both off.
    health_rate_drop: float = _key(0.5, _between(0, 1))
    #: Live health: seconds the media timestamps may fall behind the wall clock before
    #: ingest_drift.
    health_drift: float = _key(2.0, _positive)
    #: Live health: seconds of video without a keyframe before keyframe_interval.
    health_keyframe_interval: float = _key(10.0, _positive)


def _http_url_or_empty(value: Any) -> str | None:
    if value == "":
        return None
    parts = urllib.parse.urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL with a host, got {value!r}"
    return None


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Who decides whether a publish may start (see README, HTTP publish authorization)."""

    #: "keys": the stream keys this server made; "http": a POST to http_url for every
    #: publish, whose answer names the stream (the nginx-rtmp on_publish way).
    mode: str = _key("keys", _one_of("keys", "http"))
    #: Where "http" mode POSTs each publish (it receives the stream key).
    http_url: str = _key("", _http_url_or_empty)
    #: Seconds the callback has to answer.
    http_timeout: float = _key(2.0, _positive)
    #: When the callback cannot be asked (down, timed out, an answer that is not JSON):
    #: "deny" refuses the publish; "allow" lets in a key the callback allowed before, or a
    #: stream key of this server, and refuses others.
    http_on_error: str = _key("deny", _one_of("deny", "allow"))
    #: Seconds a positive answer is reused for the same key and app without asking again
    #: (0: ask every time).
    http_cache: float = _key(0.0, _non_negative)


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    """Sending webhook deliveries (see README, Webhooks)."""

    #: Seconds a receiver has to answer a delivery with a 2xx.
    timeout: float = _key(5.0, _positive)
    #: Seconds before the first retry of a delivery that failed; doubled at each failure,
    #: with jitter (a random 50-100% of it).
    retry_min: float = _key(1.0, _positive)
    #: The longest wait between retries, seconds.
    retry_max: float = _key(3600.0, _positive)
    #: Seconds after its event a delivery still failing is given up (marked failed).
    give_up_after: float = _key(86400.0, _positive)
    #: Seconds between looks for new deliveries (worker processes write them too).
    poll_interval: float = _key(0.5, _positive)
    #: Days a settled delivery (delivered or given up) and its attempts are kept for
    #: GET /api/webhooks/{id}/deliveries; 0: forever.
    keep_days: float = _key(30.0, _non_negative)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """The operators' HTTP API (and, later, HLS playback)."""

    #: HOST:PORT for the HTTP API.
    listen: str = _key("0.0.0.0:8080", _listen, restart=True)
    #: Bearer token for every endpoint but /healthz. Empty: one is generated and kept in
    #: the data directory (admin_token, mode 0600).
    admin_token: str = _key("", restart=True)
    #: The ingest URL shown to publishers, e.g. "rtmp://ingest.example.com/live". Empty:
    #: rtmp://<this host's name>:<rtmp port>/<app>.
    public_rtmp_url: str = _key("", restart=True)
    #: The same for RTMPS (when [rtmps] listen is set), e.g.
    #: "rtmps://ingest.example.com/live". Empty: rtmps://<this host's name>:<rtmps port>/<app>.
    public_rtmps_url: str = _key("", restart=True)
    #: The base URL viewers reach playback at, e.g. "https://live.example.com". Empty:
    #: http://<this host's name>:<http port>.
    public_url: str = _key("", restart=True)
    #: Seconds a client has to send all of a request's headers (from the connect, or from
    #: the first byte of a later request); then it is answered 408 and closed.
    header_timeout: float = _key(10.0, _positive, restart=True)
    #: HTTP connections open at once; more are answered 503 and closed.
    max_connections: int = _key(1024, _positive, restart=True)
    #: Serve GET /metrics (Prometheus) without the admin token.
    metrics_public: bool = _key(False, restart=True)


@dataclass(frozen=True, slots=True)
class HlsConfig:
    """Live HLS segmenting (stream copy with PyAV), recordings and playback."""

    #: Segment every live session into HLS.
    enabled: bool = _key(True, restart=True)
    #: Seconds a segment aims for; segments are cut at the first keyframe after it.
    target_duration: float = _key(2.0, _positive, restart=True)
    #: "auto" (MPEG-TS for H.264/AAC, fMP4 for HEVC, AV1, VP9, Opus), "mpegts" or "fmp4".
    segment_format: str = _key("auto", _one_of("auto", "mpegts", "fmp4"), restart=True)
    #: Segments listed in the live playlist; older ones are deleted unless recorded.
    window: int = _key(6, _positive, restart=True)
    #: Most seconds an unrecorded session's media stays after it ends: it is deleted once a
    #: player that loaded the final playlist can have played it through (the seconds that
    #: playlist lists plus target_duration), but never later than this. 0: at once.
    max_linger: float = _key(30.0, _non_negative, restart=True)
    #: Days a recording is kept after its session ends; 0 keeps them forever.
    retention_days: int = _key(0, _non_negative)
    #: Threads that run the segmenters (PyAV and disk work never run on the event loop).
    workers: int = _key(4, _positive, restart=True)


@dataclass(frozen=True, slots=True)
class TranscodeConfig:
    """Renditions: H.264 encodes of a session's video, beside the source (see
    :mod:`sessions.transcode`)."""

    #: The ladder for streams that set no profiles, in the compact form
    #: "NAME:WIDTHxHEIGHT:BITRATE[:FPS[:GOP]]", comma-separated. Empty: the source only.
    default_profiles: str = _key("", _profile_list)
    #: libx264's preset (the speed/quality trade-off; each step slower costs more CPU).
    preset: str = _key("veryfast", _one_of(*X264_PRESETS), restart=True)
    #: "libx264" (CPU), "nvenc" (NVIDIA GPU, h264_nvenc) or "auto" (nvenc if one opens,
    #: else libx264).
    encoder: str = _key("auto", _one_of("auto", "libx264", "nvenc"), restart=True)
    #: Processes that transcode (each takes whole sessions), fed by a bounded queue.
    processes: int = _key(1, _between(1, 256), restart=True)
    #: Seconds a session's renditions may fall behind real time before their frames are
    #: dropped to the next source keyframe (issue transcode_realtime).
    max_lag: float = _key(4.0, _positive, restart=True)

    @property
    def default_ladder(self) -> tuple[Profile, ...]:
        return parse_profiles(self.default_profiles)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where the ledger and media live."""

    #: Directory for the SQLite database, the admin token and (later) media.
    data_dir: str = _key("data", _non_empty, restart=True)
    #: The SQLite database file; relative paths are inside data_dir.
    database: str = _key("rtmp-ingest.db", _non_empty, restart=True)
    #: Seconds a write waits for another process's lock on the database (the CLI, a
    #: backup) before it fails; the server then retries it until it lands, reporting the
    #: store as degraded meanwhile.
    busy_timeout: float = _key(5.0, _non_negative, restart=True)

    @property
    def database_path(self) -> Path:
        """The SQLite file: ``database``, inside ``data_dir`` when relative."""
        return Path(self.data_dir) / self.database

    @property
    def media_root(self) -> Path:
        """Where sessions' segments, playlists and recordings go."""
        return Path(self.data_dir) / "media"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; one attribute per TOML section."""

    rtmp: RtmpConfig = field(default_factory=RtmpConfig)
    rtmps: RtmpsConfig = field(default_factory=RtmpsConfig)
    multistream: MultistreamConfig = field(default_factory=MultistreamConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    transcode: TranscodeConfig = field(default_factory=TranscodeConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    log: LogConfig = field(default_factory=LogConfig)


#: Keys of one section that must not exceed another: (section, lower key, higher key).
#: Checked only when both keys passed their own checks.
_ORDERED = (
    ("sessions", "reject_delay_min", "reject_delay_max"),
    ("rtmp", "max_message_size_before_publish", "max_message_size"),
    ("rtmp", "max_message_size", "max_partial_bytes"),
    ("rtmp", "handshake_timeout", "publish_timeout"),
    ("multistream", "retry_min", "retry_max"),
    ("webhooks", "retry_min", "retry_max"),
)
#: Keys that, when set (not 0), must stay below another of their section, and why.
_BELOW = (
    (
        "rtmp",
        "max_pending_connections",
        "max_connections",
        "publishers always find room",
    ),
)


def _rtmps_files(rtmps: RtmpsConfig) -> list[str]:
    """RTMPS on needs a certificate and its key that load (read again at every reload)."""
    if not rtmps.enabled:
        return []
    missing = [
        f"rtmps.{key}: must be set when rtmps.listen is (a PEM file)"
        for key in ("cert_file", "key_file")
        if not getattr(rtmps, key)
    ]
    if missing:
        return missing
    problem = certificate_problem(rtmps.cert_file, rtmps.key_file)
    return [f"rtmps.cert_file: {problem}"] if problem else []


def _distinct_ports(rtmp: RtmpConfig, rtmps: RtmpsConfig) -> list[str]:
    if rtmps.enabled and rtmps.port and rtmps.port == rtmp.port:
        return [f"rtmps.listen: must be another port than rtmp.listen ({rtmp.listen})"]
    return []


def _ca_file(multistream: MultistreamConfig) -> list[str]:
    if not multistream.ca_file:
        return []
    try:
        ssl.create_default_context(cafile=multistream.ca_file)
    except OSError as exc:
        return [f"multistream.ca_file: cannot read {multistream.ca_file}: {exc.strerror or exc}"]
    except ssl.SSLError as exc:
        return [f"multistream.ca_file: not PEM certificates ({exc.reason or exc})"]
    return []


def _auth_url(auth: AuthConfig) -> list[str]:
    if auth.mode == "http" and not auth.http_url:
        return ['auth.http_url: must be set when auth.mode is "http"']
    return []


#: Checks of keys of one or more sections together, run once each key passed its own:
#: (sections, check), the check taking those sections and returning its problems.
_TOGETHER: tuple[tuple[tuple[str, ...], Callable[..., list[str]]], ...] = (
    (("rtmps",), _rtmps_files),
    (("rtmp", "rtmps"), _distinct_ports),
    (("multistream",), _ca_file),
    (("auth",), _auth_url),
)


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KeySpec:
    section: str
    name: str
    type: type
    default: Any
    checks: tuple[_Check, ...]
    restart: bool

    @property
    def env_var(self) -> str:
        return f"{ENV_PREFIX}{self.section}_{self.name}".upper()


def _build_specs() -> dict[str, tuple[type, dict[str, _KeySpec]]]:
    specs: dict[str, tuple[type, dict[str, _KeySpec]]] = {}
    config_types = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        cls = config_types[section.name]
        types = typing.get_type_hints(cls)
        keys = {
            f.name: _KeySpec(
                section.name,
                f.name,
                types[f.name],
                f.default,
                f.metadata.get("checks", ()),
                f.metadata.get("restart", False),
            )
            for f in dataclasses.fields(cls)
        }
        specs[section.name] = (cls, keys)
    return specs


_SPECS = _build_specs()
_ENV_KEYS = {spec.env_var: spec for _, keys in _SPECS.values() for spec in keys.values()}
#: ``section.key`` of every key a reload cannot apply to a running server.
RESTART_KEYS = frozenset(
    f"{spec.section}.{spec.name}"
    for _, keys in _SPECS.values()
    for spec in keys.values()
    if spec.restart
)


def changed_keys(old: Config, new: Config) -> list[str]:
    """``section.key`` of every setting that differs."""
    changed = []
    for section in dataclasses.fields(old):
        before, after = getattr(old, section.name), getattr(new, section.name)
        for key in dataclasses.fields(before):
            if getattr(before, key.name) != getattr(after, key.name):
                changed.append(f"{section.name}.{key.name}")
    return changed


_TOML_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (dict, "table"),
    (list, "array"),
)
_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def _toml_type(value: object) -> str:
    for kind, name in _TOML_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _from_toml(value: object, kind: type) -> tuple[Any, str | None]:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[kind]
    if not ok:
        return None, f"expected {_TYPE_NAMES[kind]}, got {_toml_type(value)} {value!r}"
    if kind is float:
        try:
            finite = math.isfinite(typing.cast(float, value))
        except OverflowError:
            finite = False
        if not finite:
            return None, f"must be a finite number, got {value!r}"
    return value, None


def _from_env(text: str, kind: type) -> tuple[Any, str | None]:
    if kind is str:
        return text, None
    if kind is bool:
        word = text.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True, None
        if word in ("0", "false", "no", "off"):
            return False, None
        return None, f"expected a boolean (true/false), got {text!r}"
    wrong = f"expected {_TYPE_NAMES[kind]}, got {text!r}"
    value: int | float
    try:
        value = int(text)  # even for a float key, so that messages echo the value as written
    except ValueError:
        if kind is int:
            return None, wrong
        try:
            value = float(text)
        except ValueError:
            return None, wrong
    if not math.isfinite(value):
        return None, f"must be a finite number, got {text!r}"
    return value, None


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {name}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name}: {exc.strerror or exc}") from None


def config_to_dict(config: Config) -> dict[str, Any]:
    """The configuration as plain data (to hand to a worker process)."""
    return dataclasses.asdict(config)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """The inverse of :func:`config_to_dict` (the values were validated already)."""
    return Config(**{name: cls(**data[name]) for name, (cls, _) in _SPECS.items()})


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read *path* (if given), apply environment overrides, validate, and return the config.

    Raises :class:`ConfigError` listing every problem: unknown sections, keys or
    ``RTMP_INGEST_*`` variables, wrong types and out-of-range values.
    """
    env = os.environ if environ is None else environ
    raw = {} if path is None else _read_toml(path)
    errors: list[str] = []
    # section -> key -> (value, where it came from, whether it is environment text)
    given: dict[str, dict[str, tuple[Any, str, bool]]] = {name: {} for name in _SPECS}

    for name, table in raw.items():
        if name not in _SPECS:
            kind = "section" if isinstance(table, dict) else "top-level key"
            errors.append(f"{name}: unknown {kind}")
        elif not isinstance(table, dict):
            errors.append(f"{name}: expected a table [{name}], got {_toml_type(table)}")
        else:
            for key, value in table.items():
                if key in _SPECS[name][1]:
                    given[name][key] = (value, f"{name}.{key}", False)
                else:
                    errors.append(f"{name}.{key}: unknown key")

    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or var in _RESERVED_ENV:
            continue
        spec = _ENV_KEYS.get(var)
        if spec is None:
            errors.append(f"{var}: unknown environment variable (matches no config key)")
        else:
            given[spec.section][spec.name] = (env[var], f"{var} ({spec.section}.{spec.name})", True)

    sections: dict[str, Any] = {}
    for name, (cls, keys) in _SPECS.items():
        values = {key: spec.default for key, spec in keys.items()}
        failed: set[str] = set()
        for key, (value, where, from_env) in given[name].items():
            spec = keys[key]
            value, problem = (
                _from_env(value, spec.type) if from_env else _from_toml(value, spec.type)
            )
            problems = [problem] if problem else [p for c in spec.checks if (p := c(value))]
            if problems:
                errors.extend(f"{where}: {p}" for p in problems)
                failed.add(key)
            else:
                values[key] = float(value) if spec.type is float else value
        for section, low, high in _ORDERED:
            if section == name and not failed & {low, high} and values[low] > values[high]:
                errors.append(
                    f"{name}.{low}: must be <= {name}.{high} ({values[high]}), got {values[low]}"
                )
        for section, low, high, why in _BELOW:
            if (
                section == name
                and not failed & {low, high}
                and values[low]
                and values[low] >= values[high]
            ):
                errors.append(
                    f"{name}.{low}: must be < {name}.{high} ({values[high]}) so that {why}, "
                    f"got {values[low]}"
                )
        if not errors:
            sections[name] = cls(**values)
    for names, check in _TOGETHER:
        if all(name in sections for name in names):
            errors.extend(check(*(sections[name] for name in names)))

    if errors:
        raise ConfigError(errors)
    return Config(**sections)
