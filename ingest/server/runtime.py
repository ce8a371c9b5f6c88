"""What the main process and the worker processes derive alike from the configuration:
where the store and the media live, the segmenting settings, the duplicate-publish policy.

Kept apart from :mod:`ingest.server.app` so that a worker process does not import the HTTP API.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

from ingest.config import Config
from sessions.publishers import DuplicatePolicy
from sessions.segmenting import MediaSettings


def database_path(config: Config) -> Path:
    """The SQLite file: ``storage.database``, inside ``storage.data_dir`` when relative."""
    return Path(config.storage.data_dir) / config.storage.database


def media_root(config: Config) -> Path:
    """Where sessions' segments, playlists and recordings go."""
    return Path(config.storage.data_dir) / "media"


def media_settings(
    config: Config, executor: concurrent.futures.Executor, public_url: str
) -> MediaSettings | None:
    """How sessions are segmented into HLS, or None with HLS off."""
    if not config.hls.enabled:
        return None
    value = config.hls.segment_format
    return MediaSettings(
        root=media_root(config),
        executor=executor,
        public_url=public_url,
        target_duration=config.hls.target_duration,
        segment_format="mpegts" if value == "mpegts" else "fmp4" if value == "fmp4" else "auto",
        window=config.hls.window,
        max_linger=config.hls.max_linger,
    )


def duplicate_policy(config: Config) -> DuplicatePolicy:
    return "reject" if config.sessions.duplicate_publish == "reject" else "replace"


def media_executor(config: Config) -> concurrent.futures.ThreadPoolExecutor:
    """The threads that run the segmenters and recordings."""
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=config.hls.workers, thread_name_prefix="media"
    )
