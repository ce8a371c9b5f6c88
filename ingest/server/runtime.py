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
from ingest.server.looplag import LoopLagMonitor
from sessions.attachments import AttachmentFactory
from sessions.auth import KeyAuthorizer
from sessions.health import HealthRules
from sessions.manager import SHUTTING_DOWN, SessionManager
from sessions.metrics import ProcessMetrics
from sessions.owner import DuplicatePolicy, Owner, StreamOwner
from sessions.segmenting import MediaSettings
from sessions.streams import Streams
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

    async def start(self, *, recover: bool = True) -> None:
        """Start the session manager (recovering what a crash left, with ``recover``) and
        the owner's checks."""
        await self.manager.start(recover=recover)
        if self.owner is not None:
            self.owner.start()

    async def close(self) -> None:
        """End every publish and every reconnecting session (as ``shutdown``), write
        everything, stop (the executor is the caller's to shut down, after its last
        use)."""
        if self.owner is not None:
            self.owner.end_all(EndReason.SHUTDOWN, SHUTTING_DOWN)
        await self.manager.close()
        if self.owner is not None:
            await self.owner.close()


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
    its ``process`` number."""
    executor = media_executor(config)
    writes = StoreWrites(store)
    streams: Streams | None = None
    authorizer: KeyAuthorizer | None = None
    own: StreamOwner | None = None
    if owner is None:
        streams = Streams(store)
        authorizer = KeyAuthorizer(
            streams,
            writes,
            reject_delay=(config.sessions.reject_delay_min, config.sessions.reject_delay_max),
            throttle_failures=config.sessions.throttle_failures,
            throttle_window=config.sessions.throttle_window,
        )
        owner = own = StreamOwner(
            authorizer,
            policy=DuplicatePolicy(config.sessions.duplicate_publish),
            enabled_streams=store.enabled_streams,
            check_interval=config.sessions.flush_interval,
            reconnect_window=config.sessions.reconnect_window,
        )
        streams.on_disabled = own.end_stream
    manager = SessionManager(
        store,
        owner,
        process=process,
        writes=writes,
        flush_interval=config.sessions.flush_interval,
        rate_window=config.sessions.rate_window,
        media=media_settings(config, executor, public_url),
        attachments=attachments,
        health=health_rules(config),
    )
    if own is not None:
        # Sessions no publish holds (a reconnect window that closed) end here.
        own.expire = manager.end_unheld
    return SessionSide(manager, executor, own, authorizer, streams)


def process_metrics(
    manager: SessionManager, rtmp: RtmpServer | None, loop_lag: LoopLagMonitor
) -> ProcessMetrics:
    """This process's metrics: its session manager's, its open RTMP connections and its
    event loop's lag."""
    metrics = manager.metrics()
    metrics.connections = len(rtmp.connections) if rtmp is not None else 0
    metrics.loop_lag = loop_lag.histogram.copy()
    return metrics


def apply_live(config: Config, side: SessionSide, rtmp: RtmpServer | None = None) -> None:
    """Apply to a running process what can change without a restart (every key not
    declared ``restart`` in :mod:`ingest.config`): the listener's limits and timeouts,
    the ledger's rhythm, the publishing policy and key checks, the log."""
    if rtmp is not None:
        rtmp.apply(config.rtmp, config.rtmps)
    side.manager.flush_interval = config.sessions.flush_interval
    side.manager.rate_window = config.sessions.rate_window
    side.manager.set_health_rules(health_rules(config))
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
    apply_log_config(config.log)
