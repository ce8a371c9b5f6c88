"""The server's RTMP side and ledger assembled in the test's event loop (no HTTP), built
as the server builds them (:func:`ingest.server.runtime.build_sessions`)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import (
    AuthConfig,
    Config,
    HlsConfig,
    MultistreamConfig,
    RtmpConfig,
    RtmpsConfig,
    SessionsConfig,
    StorageConfig,
    TranscodeConfig,
)
from ingest.listener import RtmpServer
from ingest.server.runtime import SessionSide, build_sessions
from sessions.attachments import AttachmentFactory
from sessions.auth import KeyAuthorizer
from sessions.manager import SessionManager
from sessions.owner import StreamOwner
from sessions.streams import Streams
from storage import Store


@dataclass
class Stack:
    store: Store
    sessions: SessionSide
    rtmp: RtmpServer
    media_root: Path

    @property
    def manager(self) -> SessionManager:
        return self.sessions.manager

    @property
    def owner(self) -> StreamOwner:
        assert self.sessions.owner is not None
        return self.sessions.owner

    @property
    def streams(self) -> Streams:
        assert self.sessions.streams is not None
        return self.sessions.streams

    @property
    def authorizer(self) -> KeyAuthorizer:
        assert self.sessions.authorizer is not None
        return self.sessions.authorizer

    @property
    def executor(self) -> ThreadPoolExecutor:
        return self.sessions.executor

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp.port}/live/{key}"

    def tls_url(self, key: str) -> str:
        return f"rtmps://127.0.0.1:{self.rtmp.tls_port}/live/{key}"

    async def close(self) -> None:
        self.rtmp.stop_accepting()
        await self.sessions.close()
        await self.rtmp.close()
        await self.authorizer.drain()
        await self.store.close()
        self.executor.shutdown(wait=True)


async def start_stack(
    tmp_path: Path,
    *,
    policy: str = "replace",
    flush_interval: float = 0.2,
    throttle_failures: int = 10,
    hls: bool = False,
    max_linger: float = 30.0,
    rtmps: RtmpsConfig | None = None,
    attachments: Sequence[AttachmentFactory] = (),
    multistream: MultistreamConfig | None = None,
    transcode: TranscodeConfig | None = None,
    auth: AuthConfig | None = None,
    reconnect_window: float = 0.0,
    **rtmp: Any,
) -> Stack:
    """The stack on free ports of 127.0.0.1; with ``rtmps`` (its ``listen`` is
    127.0.0.1:0 unless given), RTMPS too; ``multistream``: how sessions are forwarded to
    their streams' targets.

    ``reconnect_window`` is 0 here, not the server's default of 10 s: most tests end a
    publish and expect its session to end at once; the tests of the reconnect window
    set it."""
    store = await Store.open(tmp_path / "ledger.db")
    config = Config(
        rtmp=RtmpConfig(listen="127.0.0.1:0", **rtmp),
        sessions=SessionsConfig(
            duplicate_publish=policy,
            flush_interval=flush_interval,
            rate_window=2.0,
            reject_delay_min=0.0,
            reject_delay_max=0.0,
            throttle_failures=throttle_failures,
            reconnect_window=reconnect_window,
        ),
        auth=auth or AuthConfig(),
        hls=HlsConfig(enabled=hls, max_linger=max_linger, workers=2),
        storage=StorageConfig(data_dir=str(tmp_path)),
        multistream=multistream or MultistreamConfig(),
        transcode=transcode or TranscodeConfig(),
    )
    sessions = build_sessions(config, store, "http://viewer.test", attachments=attachments)
    await sessions.start()
    server = RtmpServer(config.rtmp, sessions.manager, sessions.manager, rtmps)
    await server.start()
    return Stack(store, sessions, server, config.storage.media_root)
