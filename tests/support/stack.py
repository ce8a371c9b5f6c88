"""The server's RTMP side and ledger assembled in the test's event loop (no HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.config import RtmpConfig, RtmpsConfig
from ingest.listener import RtmpServer
from sessions.auth import KeyAuthorizer
from sessions.manager import SessionManager
from sessions.publishers import DuplicatePolicy, LivePublishers
from sessions.segmenting import MediaSettings
from sessions.streams import Streams
from storage import Store


@dataclass
class Stack:
    store: Store
    manager: SessionManager
    streams: Streams
    authorizer: KeyAuthorizer
    rtmp: RtmpServer
    media_root: Path
    executor: ThreadPoolExecutor

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp.port}/live/{key}"

    def tls_url(self, key: str) -> str:
        return f"rtmps://127.0.0.1:{self.rtmp.tls_port}/live/{key}"

    async def close(self) -> None:
        self.rtmp.stop_accepting()
        await self.manager.close()
        await self.rtmp.close()
        await self.authorizer.drain()
        await self.store.close()
        self.executor.shutdown(wait=True)


async def start_stack(
    tmp_path: Path,
    *,
    policy: DuplicatePolicy = "replace",
    flush_interval: float = 0.2,
    throttle_failures: int = 10,
    hls: bool = False,
    max_linger: float = 30.0,
    rtmps: RtmpsConfig | None = None,
    **rtmp: Any,
) -> Stack:
    """The stack on free ports of 127.0.0.1; with ``rtmps`` (its ``listen`` is
    127.0.0.1:0 unless given), RTMPS too."""
    store = await Store.open(tmp_path / "ledger.db")
    executor = ThreadPoolExecutor(max_workers=2)
    media_root = tmp_path / "media"
    media = (
        MediaSettings(media_root, executor, "http://viewer.test", max_linger=max_linger)
        if hls
        else None
    )
    manager = SessionManager(store, flush_interval=flush_interval, rate_window=2.0, media=media)
    await manager.start()
    streams = Streams(store, on_disabled=manager.end_stream)
    authorizer = KeyAuthorizer(
        streams, manager.writes, reject_delay=(0.0, 0.0), throttle_failures=throttle_failures
    )
    publishers = LivePublishers(authorizer, manager, policy)
    server = RtmpServer(RtmpConfig(listen="127.0.0.1:0", **rtmp), publishers, publishers, rtmps)
    await server.start()
    return Stack(store, manager, streams, authorizer, server, media_root, executor)
