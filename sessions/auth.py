"""Stream-key authorization with a randomized delay for refusals and per-address throttling.

A publish is accepted when its key (the publish name, query stripped) hashes to an
enabled stream. A refusal waits a random ``reject_delay_min``..``reject_delay_max``
seconds before the error status goes out (guessing keys gets slow), and an address with
``throttle_failures`` refusals within ``throttle_window`` seconds is refused at once,
without a key lookup, until they age out. Every attempt is one event-log row (the first
throttled attempt of a window, not each one, so a flood cannot flood the log), queued
with the server's other writes (:class:`~sessions.writes.StoreWrites`), so a publisher
never waits for the store and a row the store refuses for a while is retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ingest.hooks import Decision, PublishAttempt
from ingest.logs import log_event
from ingest.profiles import ProfileError, format_profiles, profiles_from_json
from sessions.streams import Streams
from sessions.webhooks.events import WebhookEvent, stream_event
from sessions.writes import StoreWrites

logger = logging.getLogger("sessions.auth")

BAD_KEY = "NetStream.Publish.BadName"
#: Addresses with recent refusals kept before the aged-out ones are swept.
_MAX_TRACKED = 10_000
DENIED = "NetStream.Publish.Denied"


def address_of(remote_addr: str) -> str:
    """The host part of ``host:port`` (IPv6 hosts included)."""
    host, sep, _ = remote_addr.rpartition(":")
    return host if sep else remote_addr


def _ladder(stream_id: str, stored: list[dict[str, Any]]) -> str:
    """A stream's profiles as a decision carries them; a stored ladder that breaks the
    rules (a row edited by hand) is logged and left out, the publish goes on."""
    try:
        return format_profiles(profiles_from_json(stored))
    except ProfileError as exc:
        log_event(logger, logging.ERROR, "profiles_invalid", stream=stream_id, error=str(exc))
        return ""


class KeyAuthorizer:
    def __init__(
        self,
        streams: Streams,
        writes: StoreWrites,
        *,
        reject_delay: tuple[float, float] = (0.2, 1.0),
        throttle_failures: int = 10,
        throttle_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.streams = streams
        self.writes = writes
        self.reject_delay = reject_delay
        self.throttle_failures = throttle_failures
        self.throttle_window = throttle_window
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self._failures: dict[str, deque[float]] = {}
        self._throttle_logged: dict[str, float] = {}

    def log(self, kind: str, **fields: Any) -> None:
        """Queue an event-log row (the publisher does not wait for the store)."""
        self.writes.event(kind, at=self.wall_clock(), **fields)

    def log_rejected(self, attempt: PublishAttempt, reason: str, stream_id: str | None) -> None:
        """The event-log row of a refused publish, and its ``publish.rejected`` webhook
        event (in the same write)."""
        at = self.wall_clock()
        self.writes.event(
            "publish_rejected",
            at=at,
            stream_id=stream_id,
            remote_addr=attempt.remote_addr,
            reason=reason,
            webhook=stream_event(
                WebhookEvent.PUBLISH_REJECTED,
                stream_id,
                at,
                app=attempt.app,
                remote_addr=attempt.remote_addr,
                reason=reason,
            ),
        )

    async def drain(self) -> None:
        """Wait for the event-log rows queued so far to be written."""
        await self.writes.join()

    def _forget_old(self) -> None:
        """Drop addresses whose refusals all aged out (bounds memory under a spray of
        addresses)."""
        for address in list(self._failures):
            self.throttled(address)
        horizon = self.clock() - self.throttle_window
        for address, at in list(self._throttle_logged.items()):
            if at <= horizon:
                del self._throttle_logged[address]

    def throttled(self, address: str) -> bool:
        failures = self._failures.get(address)
        if failures is None:
            return False
        horizon = self.clock() - self.throttle_window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return False
        return len(failures) >= self.throttle_failures

    async def authorize(self, attempt: PublishAttempt) -> Decision:
        address = address_of(attempt.remote_addr)
        if self.throttled(address):
            return await self.throttle_refusal(attempt, address)
        stream = await self.streams.authenticate(attempt.key)
        if stream is None:
            return await self.refuse(attempt, address, BAD_KEY, "unknown stream key", None)
        if stream.disabled:
            return await self.refuse(attempt, address, DENIED, "stream is disabled", stream.id)
        self.log(
            "publish_accepted",
            stream_id=stream.id,
            remote_addr=attempt.remote_addr,
        )
        return Decision(
            True,
            stream_id=stream.id,
            stream_name=stream.name,
            playback_id=stream.playback_id,
            record=stream.record,
            profiles=_ladder(stream.id, stream.profiles),
        )

    async def refuse(
        self, attempt: PublishAttempt, address: str, code: str, reason: str, stream_id: str | None
    ) -> Decision:
        if len(self._failures) >= _MAX_TRACKED:
            self._forget_old()
        self._failures.setdefault(address, deque()).append(self.clock())
        self.log_rejected(attempt, reason, stream_id)
        low, high = self.reject_delay
        if high > 0:
            await self.sleep(random.uniform(low, high))
        return Decision(False, code, reason)

    async def throttle_refusal(self, attempt: PublishAttempt, address: str) -> Decision:
        now = self.clock()
        last = self._throttle_logged.get(address)
        if last is None or now - last >= self.throttle_window:
            self._throttle_logged[address] = now
            log_event(
                logger,
                logging.WARNING,
                "address_throttled",
                address=address,
                failures=len(self._failures.get(address, ())),
            )
            self.log(
                "publish_throttled",
                remote_addr=attempt.remote_addr,
                reason=f"{self.throttle_failures} refused publishes within "
                f"{self.throttle_window:g}s",
            )
        return Decision(False, DENIED, "too many refused publishes from this address")
