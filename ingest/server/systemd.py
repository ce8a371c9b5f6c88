"""systemd integration without libsystemd: readiness and watchdog notifications, socket
activation, and telling whether output goes to the journal.

Everything here is a no-op outside systemd: :meth:`Notifier.from_environ` returns ``None``
without ``NOTIFY_SOCKET``, :func:`watchdog_interval` without ``WATCHDOG_USEC``, and
:func:`activated_sockets` without ``LISTEN_PID``. The protocols are the ones described in
sd_notify(3), sd_watchdog_enabled(3) and sd_listen_fds(3).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field

import asyncio_dgram

__all__ = [
    "LISTEN_FDS_START",
    "ActivatedSockets",
    "Notifier",
    "activated_sockets",
    "journal_stream",
    "run_watchdog",
    "watchdog_interval",
]

logger = logging.getLogger("ingest.systemd")

#: The first passed file descriptor (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3

_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def _notify_address(value: str) -> str | None:
    """The socket address of a ``NOTIFY_SOCKET`` value, or ``None`` if it is not one we use."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # the abstract namespace
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """sd_notify over the ``NOTIFY_SOCKET`` unix datagram socket, with asyncio-dgram.

    Sending never raises: a failure (the manager's socket is gone, the send buffer is full)
    is logged once at debug level, and the next send connects afresh.
    """

    def __init__(self, address: str) -> None:
        #: The socket address (a path, or ``"\\0name"`` in the abstract namespace).
        self.address = address
        self._stream: asyncio_dgram.aio.DatagramClient | _SocketSender | None = None
        self._lock = asyncio.Lock()
        self._failed = False
        self._closed = False

    @classmethod
    async def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier | None:
        """A notifier for ``NOTIFY_SOCKET``, or ``None`` (silence) when it is unset or empty.

        A path or an ``@name`` abstract address; anything else is ignored (logged at debug).
        """
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        if not value:
            return None
        address = _notify_address(value)
        if address is None:
            logger.debug("NOTIFY_SOCKET=%r is not a path or an abstract address; ignored", value)
            return None
        notifier = cls(address)
        async with notifier._lock:
            await notifier._connect()
        return notifier

    async def _connect(self) -> asyncio_dgram.aio.DatagramClient | _SocketSender | None:
        if self._stream is None and not self._closed:
            try:
                try:
                    self._stream = await asyncio_dgram.connect(self.address)
                except (TypeError, NotImplementedError):
                    # This event loop cannot make unix datagram endpoints (uvloop).
                    self._stream = _SocketSender(self.address)
            except OSError as exc:
                self._log_failure(exc)
        return self._stream

    def _log_failure(self, exc: BaseException) -> None:
        if not self._failed:
            self._failed = True
            logger.debug("cannot notify the service manager at %r: %s", self.address, exc)

    async def send(self, *assignments: str) -> None:
        """Send ``KEY=VALUE`` assignments as one datagram (newline-separated)."""
        if not assignments or self._closed:
            return
        data = "\n".join(assignments).encode()
        async with self._lock:
            # A socket connected earlier may point at a receiver that has since gone (the
            # manager re-created its socket): then connect afresh and try once more.
            for _ in range(2):
                reused = self._stream is not None
                stream = await self._connect()
                if stream is None:
                    return
                try:
                    await stream.send(data)
                    _ = stream.exception  # an immediate send error is queued, not raised
                    return
                except (OSError, asyncio_dgram.TransportClosed) as exc:
                    self._log_failure(exc)
                    stream.close()
                    self._stream = None
                if not reused:
                    return

    async def ready(self, status: str | None = None) -> None:
        """Startup is complete (``READY=1``), with an optional status line."""
        if status is None:
            await self.send("READY=1")
        else:
            await self.send("READY=1", _status(status))

    async def reloading(self) -> None:
        """A reload has begun (``RELOADING=1`` with the monotonic time it began at).

        Send :meth:`ready` when it is done.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        await self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    async def stopping(self) -> None:
        """Shutdown has begun (``STOPPING=1``)."""
        await self.send("STOPPING=1")

    async def status(self, text: str) -> None:
        """A one-line status, shown by ``systemctl status`` (``STATUS=``)."""
        await self.send(_status(text))

    async def watchdog(self) -> None:
        """Keep the watchdog from firing (``WATCHDOG=1``)."""
        await self.send("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket; later sends do nothing."""
        self._closed = True
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class _SocketSender:
    """A connected, non-blocking unix datagram socket: what :class:`Notifier` uses where
    the event loop cannot make unix datagram endpoints. A datagram to a local socket is
    queued at once or refused, so sending never waits."""

    exception: BaseException | None = None

    def __init__(self, address: str) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            self._sock.connect(address)
        except OSError:
            self._sock.close()
            raise

    async def send(self, data: bytes) -> None:
        self._sock.send(data)

    def close(self) -> None:
        self._sock.close()


def _status(text: str) -> str:
    return "STATUS=" + " ".join(text.splitlines())


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds (``WATCHDOG_USEC``), when it is meant for this process.

    ``None`` when the watchdog is off, when ``WATCHDOG_PID`` names another process, or when
    either variable is not a valid positive number.
    """
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != "" and _positive_int(pid) != os.getpid():
        return None
    usec = _positive_int(env.get("WATCHDOG_USEC", ""))
    return None if usec is None else usec / 1_000_000


def _positive_int(text: str) -> int | None:
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value > 0 else None


async def run_watchdog(notifier: Notifier, interval: float) -> None:
    """Ping the watchdog every ``interval / 2`` seconds, forever; cancel the task to stop.

    The pings come from the event loop itself, so a loop that stalls stops them and systemd
    restarts the service.
    """
    period = interval / 2
    while True:
        await notifier.watchdog()
        await asyncio.sleep(period)


@dataclass(frozen=True)
class ActivatedSockets:
    """Listening sockets passed by systemd, by the listener they are for."""

    rtmp: list[socket.socket]
    http: list[socket.socket]
    #: RTMPS (``[rtmps]``); given only by name, never an unnamed socket.
    rtmps: list[socket.socket] = field(default_factory=list)


def activated_sockets(
    environ: MutableMapping[str, str] | None = None, *, unset: bool = True
) -> ActivatedSockets | None:
    """The sockets passed by socket activation, or ``None`` when this process got none.

    When ``LISTEN_PID`` is this process and ``LISTEN_FDS`` is *n* > 0, file descriptors 3 to
    3 + *n* - 1 are listening sockets. ``LISTEN_FDNAMES`` (colon-separated, from
    ``FileDescriptorName=``) says which is which: ``rtmp``, ``http`` or ``rtmps``. Sockets
    with any other name (``unknown``, or systemd's default, the socket unit's name) are
    given, in order, to whichever of rtmp and http has no named socket, rtmp first (never
    to rtmps: a TLS port is only ever the one named so).

    Each socket is made non-blocking and close-on-exec. With *unset* (the default) the
    ``LISTEN_*`` variables are removed from *environ*, as sd_listen_fds(3) does, so that
    child processes do not take them for theirs.

    Raises :class:`ValueError` when a descriptor is not a listening stream socket, or when
    there are more unnamed sockets than roles to give them.
    """
    env = os.environ if environ is None else environ
    try:
        return _activated_sockets(env)
    finally:
        if unset:
            for name in _LISTEN_VARS:
                env.pop(name, None)


def _activated_sockets(env: Mapping[str, str]) -> ActivatedSockets | None:
    pid = env.get("LISTEN_PID")
    if pid is None or _positive_int(pid) != os.getpid():
        return None
    count_text = env.get("LISTEN_FDS", "").strip()
    if count_text in ("", "0"):
        return None
    count = _positive_int(count_text)
    if count is None:
        raise ValueError(f"LISTEN_FDS={count_text!r} is not a number of file descriptors")
    names_text = env.get("LISTEN_FDNAMES", "")
    names = names_text.split(":") if names_text else []
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + count)
    roles: dict[str, list[int]] = {"rtmp": [], "http": []}
    tls: list[int] = []
    unnamed: list[int] = []
    for index, fd in enumerate(fds):
        name = names[index] if index < len(names) else "unknown"
        (tls if name == "rtmps" else roles.get(name, unnamed)).append(fd)
    free = [role for role, taken in roles.items() if not taken]
    if len(unnamed) > len(free):
        extra = unnamed[len(free)]
        raise ValueError(
            f"passed file descriptor {extra} has no name rtmp, http or rtmps, and both rtmp "
            "and http already have a socket (set FileDescriptorName= in the .socket unit)"
        )
    for role, fd in zip(free, unnamed, strict=False):
        roles[role].append(fd)
    wrapped: list[socket.socket] = []
    by_fd: dict[int, socket.socket] = {}
    try:
        for fd in fds:
            sock = _listening_socket(fd)
            wrapped.append(sock)
            by_fd[fd] = sock
    except BaseException:
        for sock in wrapped:
            sock.detach()  # leave the descriptors as they were passed
        raise
    return ActivatedSockets(
        rtmp=[by_fd[fd] for fd in roles["rtmp"]],
        http=[by_fd[fd] for fd in roles["http"]],
        rtmps=[by_fd[fd] for fd in tls],
    )


def _listening_socket(fd: int) -> socket.socket:
    """Wrap *fd*, a passed listening stream socket (family and type read from the fd)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ValueError(f"passed file descriptor {fd} is not a socket: {exc}") from None
    try:
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(
                f"passed file descriptor {fd} is not a stream socket ({sock.type!r}); "
                "use ListenStream= in the .socket unit"
            )
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ValueError(
                f"passed file descriptor {fd} is not listening (is Accept=yes set in the "
                ".socket unit? it must be no)"
            )
        sock.setblocking(False)
        sock.set_inheritable(False)
    except BaseException:
        sock.detach()  # leave the descriptor to whoever owns it
        raise
    return sock


def journal_stream(environ: Mapping[str, str] | None = None) -> bool:
    """Whether stdout/stderr are connected to the journal (``JOURNAL_STREAM`` is set)."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM"))
