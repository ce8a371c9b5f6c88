"""Which new connections the listener takes: the caps on connections open at once and on
those not yet publishing, in all and per address, and the log lines of what they refuse.

A connection is *pending* from its accept until its publish is accepted (the handshake,
``connect``, ``createStream``, ``publish`` and the key check). Pending connections are
capped in all (``rtmp.max_pending_connections``, always below ``max_connections``) and
per address (``rtmp.max_pending_per_address``; an IPv6 /64 is one address, as one host
has all of it), and each must be publishing within ``rtmp.publish_timeout`` however it
paces its bytes. So peers that connect and stall, from one address or many, never fill
``max_connections``: an encoder from another address finds room, and the room a
connection that publishes holds is never taken by one that does not.

A connection over a cap is refused at once (reset before a byte is read), rather than
making room by dropping an older pending connection from the same address: the newest is
the one nothing has been invested in, dropping the oldest would let a peer that
reconnects fast cut off the slower encoders behind the same NAT in the middle of their
set-up, and an encoder refused now retries (and gets in as soon as a pending connection
publishes, fails or runs out of time).

Refusals are logged as ``connection_refused`` with the cap and its value, at most one line
per cap every :attr:`RefusalLog.interval` seconds, each counting the refusals it stands
for: a flood of connections cannot flood the log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from ingest.config import RtmpConfig
from ingest.logs import log_event

logger = logging.getLogger("ingest.listener")


def address_of(host: str) -> str:
    """What the per-address cap counts by: the IP address (an IPv4-mapped IPv6 address as
    its IPv4 one), or for IPv6 its /64 network."""
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class RefusalLog:
    """Logs refused connections: the first refusal for a cap at once, then at most one
    line per cap every :attr:`interval` seconds with how many were refused since."""

    #: Seconds between two lines about one cap.
    interval = 10.0

    def __init__(self) -> None:
        #: cap -> (refusals not logged yet, the last one's remote address, the cap's value)
        self._held: dict[str, tuple[int, str, int]] = {}
        self._quiet: set[str] = set()

    def refused(self, cap: str, limit: int, remote: str) -> None:
        if cap not in self._quiet:
            self._emit(cap, limit, remote, 1)
            return
        count = self._held[cap][0] + 1 if cap in self._held else 1
        self._held[cap] = (count, remote, limit)

    def _emit(self, cap: str, limit: int, remote: str, count: int) -> None:
        log_event(
            logger,
            logging.WARNING,
            "connection_refused",
            remote=remote,
            reason=f"{cap} reached",
            limit=limit,
            refused=count,
        )
        self._quiet.add(cap)
        asyncio.get_running_loop().call_later(self.interval, self._flush, cap)

    def _flush(self, cap: str) -> None:
        self._quiet.discard(cap)
        held = self._held.pop(cap, None)
        if held is not None:
            count, remote, limit = held
            self._emit(cap, limit, remote, count)


class Admission:
    """Counts the pending connections, in all and per address, and refuses new ones over
    a cap (logging them through :attr:`log`)."""

    def __init__(self) -> None:
        self.pending = 0
        self._by_address: dict[str, int] = {}
        self.log = RefusalLog()

    def admit(self, config: RtmpConfig, connections: int, host: str, remote: str) -> str | None:
        """Take a new connection (``connections`` are open besides it) as pending; returns
        the address it counts against, or None when a cap refuses it (logged)."""
        address = address_of(host)
        if connections >= config.max_connections:
            cap, limit = "max_connections", config.max_connections
        elif self.pending >= config.pending_limit:
            cap, limit = "max_pending_connections", config.pending_limit
        elif self._by_address.get(address, 0) >= config.max_pending_per_address:
            cap, limit = "max_pending_per_address", config.max_pending_per_address
        else:
            self.pending += 1
            self._by_address[address] = self._by_address.get(address, 0) + 1
            return address
        self.log.refused(cap, limit, remote)
        return None

    def release(self, address: str) -> None:
        """A pending connection published or closed."""
        self.pending -= 1
        left = self._by_address[address] - 1
        if left:
            self._by_address[address] = left
        else:
            del self._by_address[address]

    def pending_from(self, host: str) -> int:
        """Pending connections from ``host``'s address."""
        return self._by_address.get(address_of(host), 0)
