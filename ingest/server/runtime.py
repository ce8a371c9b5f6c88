"""What every kind of process builds alike from the configuration: the session side of a
process (:func:`build_sessions`), and a reloaded configuration applied to it
(:func:`apply_live`). The one process of a server, its main process and its worker
processes (and the tests' stack) all go through these two.

Kept apart from :mod:`ingest.server.app` so that a worker process does not import the
HTTP API.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass

from ingest.config import Config
from ingest.listener import RtmpServer
from ingest.logs import apply_log_config
from ingest.multistream import ForwardSettings
from ingest.server.forwarding import Forwarders
from ingest.server.looplag import LoopLagMonitor
from sessions.attachments import AttachmentFactory
from sessions.auth import KeyAuthorizer
from sessions.auth_http import HttpAuthorizer, HttpAuthSettings
from sessions.health import HealthRules
from sessions.manager import SHUTTING_DOWN, SessionManager
from sessions.metrics import ProcessMetrics
from sessions.owner import DuplicatePolicy, Owner, StreamOwner
from sessions.segmenting import MediaSettings
from sessions.streams import Streams
from sessions.transcode.attachment import RenditionsFactory
from sessions.writes import StoreWrites
from storage import Store
from storage.models import EndReason


def media_settings(
    config: Config, executor: concurrent.futures.Executor, public_url: str
) -> MediaSettings | None:
    """How sessions are segmented into HLS, or None with HLS off."""
    if not config.hls.enabled:
        return None
    value = config.hls.segment_format
    return MediaSettings(
        root=config.storage.media_root,
        executor=executor,
        public_url=public_url,
        target_duration=config.hls.target_duration,
        segment_format="mpegts" if value == "mpegts" else "fmp4" if value == "fmp4" else "auto",
        window=config.hls.window,
        max_linger=config.hls.max_linger,
    )


def media_executor(config: Config) -> concurrent.futures.ThreadPoolExecutor:
    """The threads that run the segmenters and recordings."""
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=config.hls.workers, thread_name_prefix="media"
    )


def health_rules(config: Config) -> HealthRules:
    """The live health checks' thresholds (``[sessions] health_*``)."""
    sessions = config.sessions
    return HealthRules(
        track_stopped=sessions.health_track_stopped,
        rate_drop=sessions.health_rate_drop,
        drift=sessions.health_drift,
        keyframe_interval=sessions.health_keyframe_interval,
    )


@dataclass
class SessionSide:
    """The session side of one process, built from the configuration."""

    manager: SessionManager
    #: The threads of its segmenters and recordings.
    executor: concurrent.futures.ThreadPoolExecutor
    #: The owner of the live streams, the key checks and the streams' management: in the
    #: process that owns the live streams (the only one, or the main one), else None.
    owner: StreamOwner | None = None
    authorizer: KeyAuthorizer | None = None
    streams: Streams | None = None
    #: The renditions of its sessions (None with HLS off).
    renditions: RenditionsFactory | None = None
    #: The HTTP callback's authorizer (in front of ``authorizer``), in the owner's process.
    http_auth: HttpAuthorizer | None = None

    async def start(self, *, recover: bool = True) -> None:
        """Start the session manager (recovering what a crash left, with ``recover``) and
        the owner's checks."""
        await self.manager.start(recover=recover)
        if self.renditions is not None:
            await self.renditions.start()
        if self.owner is not None:
            self.owner.start()

    async def close(self) -> None:
        """End every publish and every reconnecting session (as ``shutdown``), write
        everything, stop (the executor is the caller's to shut down, after its last
        use)."""
        if self.owner is not None:
            self.owner.end_all(EndReason.SHUTDOWN, SHUTTING_DOWN)
        await self.manager.close()
        if self.renditions is not None:
            await self.renditions.close()
        if self.owner is not None:
            await self.owner.close()
        if self.http_auth is not None:
            await self.http_auth.close()


def build_sessions(
    config: Config,
    store: Store,
    public_url: str,
    *,
    owner: Owner | None = None,
    process: int = 0,
    attachments: Sequence[AttachmentFactory] = (),
) -> SessionSide:
    """The session side of a process. Without ``owner`` it owns the live streams (a
    :class:`~sessions.owner.StreamOwner` with the key checks); a worker process passes
    the :class:`~sessions.remote.RemoteSessions` that asks the main process instead, and
    its ``process`` number. Every publish is forwarded to its stream's multistream
    targets (:mod:`ingest.server.forwarding`), after ``attachments``."""
    executor = media_executor(config)
    writes = StoreWrites(store)
    streams: Streams | None = None
    authorizer: KeyAuthorizer | None = None
    own: StreamOwner | None = None
    http_auth: HttpAuthorizer | None = None
    if owner is None:
        streams = Streams(store)
        authorizer = KeyAuthorizer(
            streams,
            writes,
            reject_delay=(config.sessions.reject_delay_min, config.sessions.reject_delay_max),
            throttle_failures=config.sessions.throttle_failures,
            throttle_window=config.sessions.throttle_window,
        )
        http_auth = HttpAuthorizer(authorizer, streams, auth_settings(config))
        owner = own = StreamOwner(
            http_auth if config.auth.mode == "http" else authorizer,
            policy=DuplicatePolicy(config.sessions.duplicate_publish),
            enabled_streams=store.enabled_streams,
            check_interval=config.sessions.flush_interval,
            reconnect_window=config.sessions.reconnect_window,
        )
        streams.on_disabled = own.end_stream
    forwarders = Forwarders(store, writes, ForwardSettings.from_config(config.multistream))
    media = media_settings(config, executor, public_url)
    renditions = RenditionsFactory(config) if media is not None else None
    manager = SessionManager(
        store,
        owner,
        process=process,
        writes=writes,
        flush_interval=config.sessions.flush_interval,
        rate_window=config.sessions.rate_window,
        media=media,
        attachments=[
            *attachments,
            *([renditions] if renditions is not None else []),
            forwarders,
        ],
        health=health_rules(config),
    )
    if own is not None:
        # Sessions no publish holds (a reconnect window that closed) end here.
        own.expire = manager.end_unheld
    return SessionSide(manager, executor, own, authorizer, streams, renditions, http_auth)


def process_metrics(
    manager: SessionManager, rtmp: RtmpServer | None, loop_lag: LoopLagMonitor
) -> ProcessMetrics:
    """This process's metrics: its session manager's, its open RTMP connections and its
    event loop's lag."""
    metrics = manager.metrics()
    metrics.connections = len(rtmp.connections) if rtmp is not None else 0
    metrics.loop_lag = loop_lag.histogram.copy()
    return metrics


def auth_settings(config: Config) -> HttpAuthSettings:
    """The HTTP authorization callback's settings (``[auth]``)."""
    auth = config.auth
    return HttpAuthSettings(
        url=auth.http_url,
        timeout=auth.http_timeout,
        on_error=auth.http_on_error,
        cache=auth.http_cache,
    )


def apply_live(config: Config, side: SessionSide, rtmp: RtmpServer | None = None) -> None:
    """Apply to a running process what can change without a restart (every key not
    declared ``restart`` in :mod:`ingest.config`): the listener's limits and timeouts,
    the ledger's rhythm, the publishing policy and key checks, the log."""
    if rtmp is not None:
        rtmp.apply(config.rtmp, config.rtmps)
    side.manager.flush_interval = config.sessions.flush_interval
    side.manager.rate_window = config.sessions.rate_window
    side.manager.set_health_rules(health_rules(config))
    for factory in side.manager.attachment_factories:
        if isinstance(factory, Forwarders):
            factory.settings = ForwardSettings.from_config(config.multistream)
    if side.owner is not None:
        side.owner.policy = DuplicatePolicy(config.sessions.duplicate_publish)
        side.owner.check_interval = config.sessions.flush_interval
        side.owner.reconnect_window = config.sessions.reconnect_window
    if side.authorizer is not None:
        side.authorizer.reject_delay = (
            config.sessions.reject_delay_min,
            config.sessions.reject_delay_max,
        )
        side.authorizer.throttle_failures = config.sessions.throttle_failures
        side.authorizer.throttle_window = config.sessions.throttle_window
    if side.renditions is not None:
        side.renditions.apply(config)
    if side.owner is not None and side.authorizer is not None and side.http_auth is not None:
        side.http_auth.settings = auth_settings(config)
        http = config.auth.mode == "http"
        side.owner.authorizer = side.http_auth if http else side.authorizer
    apply_log_config(config.log)
