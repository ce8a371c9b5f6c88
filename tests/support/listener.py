"""Listeners on free ports for socket tests, closed after the test: a test module takes the
fixture with ``start = pytest.fixture(listeners)``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from ingest.config import RtmpConfig, RtmpsConfig
from ingest.listener import RtmpServer
from sessions.owner import DuplicatePolicy
from tests.support.recorder import AllowAll, OwnedRecorder, Recorder

#: ``await start(authorizer=None, policy=None, **rtmp_settings)`` → (server, recorder).
Start = Callable[..., Awaitable[tuple[RtmpServer, Recorder]]]


async def listeners() -> AsyncIterator[Start]:
    """Yields ``start``, which starts an :class:`RtmpServer` on 127.0.0.1 with the given
    ``[rtmp]`` settings, an authorizer (all allowed by default) and a :class:`Recorder`
    (or ``handler``, a recorder of another kind); with ``policy``, an
    :class:`OwnedRecorder`: the owner of the live streams decides, with that
    duplicate-publish policy."""
    servers: list[RtmpServer] = []

    async def start_server(
        authorizer: object = None,
        policy: str | None = None,
        handler: Recorder | None = None,
        rtmps: RtmpsConfig | None = None,
        **settings: object,
    ) -> tuple[RtmpServer, Recorder]:
        config = RtmpConfig(listen="127.0.0.1:0", **settings)  # type: ignore[arg-type]
        auth = authorizer or AllowAll()
        recorder: Recorder
        if policy is not None:
            recorder = owned = OwnedRecorder(auth, DuplicatePolicy(policy))  # type: ignore[arg-type]
            server = RtmpServer(config, owned, owned, rtmps)
        else:
            recorder = handler or Recorder()
            server = RtmpServer(config, auth, recorder, rtmps)  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server, recorder

    yield start_server
    for server in servers:
        await server.close()
