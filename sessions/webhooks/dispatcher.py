"""Sending the outbox: each pending delivery POSTed, signed, until it lands or is given up.

Runs in the main process only (the events of every process land in the one store). A
supervisor looks for webhooks with deliveries pending every ``poll_interval`` seconds and
keeps one task per such webhook, so a receiver that is down or slow holds up only its own
deliveries, never another endpoint's and never ingest (which only writes rows).

Within one endpoint, one stream's events go in the order they were written: only the
oldest pending delivery of each stream is tried, and the next waits for it to be
delivered or given up; different streams' deliveries go side by side. A delivery is
delivered on a 2xx answer within ``timeout`` seconds; anything else (another status, a
redirect, a timeout, a refused connection) is an attempt that failed, and it is tried
again after a backoff that doubles from ``retry_min`` up to ``retry_max`` seconds, with
jitter (a random 50-100% of it), until ``give_up_after`` seconds after the event, when it
is marked ``failed``. Every attempt is a row (:meth:`storage.Store.record_attempt`).

Settled deliveries (delivered or failed) and their attempts are kept ``keep_days`` days,
then swept (hourly). The state lives in the store, so after a restart (even a SIGKILL)
the pending deliveries resume; an attempt the server died in the middle of is sent again:
delivery is at least once, and the body's ``id`` lets receivers de-duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ingest.logs import log_event
from sessions.webhooks.payload import Payloads
from sessions.webhooks.signing import HEADER, sign
from storage import AttemptRecord, PendingDelivery, Store, WebhookRecord
from storage.webhooks import DeliveryState

logger = logging.getLogger("sessions.webhooks")

#: Deliveries of one endpoint (of different streams) in flight at once.
_PARALLEL = 8


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are sent and retried (the ``[webhooks]`` configuration)."""

    timeout: float = 5.0
    retry_min: float = 1.0
    retry_max: float = 3600.0
    give_up_after: float = 86400.0
    poll_interval: float = 0.5
    #: Days settled deliveries (and their attempts) are kept; 0: forever.
    keep_days: float = 30.0


#: Seconds between sweeps of settled deliveries past ``keep_days``.
PRUNE_INTERVAL = 3600.0


def backoff(attempts: int, policy: DeliveryPolicy, rand: random.Random) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``retry_min`` doubled at
    each failure up to ``retry_max``, of which a random 50-100%."""
    base = min(policy.retry_max, policy.retry_min * 2.0 ** min(max(attempts - 1, 0), 64))
    return base * rand.uniform(0.5, 1.0)


class Dispatcher:
    """Delivers the store's pending webhook deliveries. :meth:`start`, then :meth:`close`."""

    def __init__(
        self,
        store: Store,
        payloads: Payloads,
        policy: DeliveryPolicy | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        rand: random.Random | None = None,
    ) -> None:
        self.store = store
        self.payloads = payloads
        self.policy = policy or DeliveryPolicy()
        self.clock = clock
        self.rand = rand or random.Random()
        self._client = client
        self._own_client = client is None
        self._supervisor: asyncio.Task[None] | None = None
        self._endpoints: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        #: Attempts since start by result: "delivered", "retried" (failed, to be tried
        #: again), "failed" (given up).
        self.results: Counter[str] = Counter()
        #: Deliveries waiting, as of the last look at the store (every poll).
        self.pending = 0

    def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    def wake(self) -> None:
        """Look for new deliveries now rather than at the next poll."""
        self._wake.set()

    @property
    def active_endpoints(self) -> int:
        return sum(1 for task in self._endpoints.values() if not task.done())

    async def close(self) -> None:
        """Stop sending (an attempt cut short is sent again after the next start)."""
        tasks = [t for t in (self._supervisor, *self._endpoints.values()) if t is not None]
        self._supervisor = None
        self._endpoints.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- running ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        pruned_at = float("-inf")
        while True:
            now = time.monotonic()
            if self.policy.keep_days > 0 and now - pruned_at >= PRUNE_INTERVAL:
                pruned_at = now
                await self._prune()
            try:
                self.pending = await self.store.count_pending_deliveries()
                for webhook_id in await self.store.webhooks_with_pending():
                    task = self._endpoints.get(webhook_id)
                    if task is None or task.done():
                        self._endpoints[webhook_id] = asyncio.get_running_loop().create_task(
                            self._endpoint(webhook_id)
                        )
            except Exception as exc:
                log_event(logger, logging.ERROR, "webhook_dispatch_failed", exc_info=exc)
            self._wake.clear()
            try:
                async with asyncio.timeout(self.policy.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _prune(self) -> None:
        try:
            before = self.clock() - self.policy.keep_days * 86400.0
            count = await self.store.prune_deliveries(before)
        except Exception as exc:
            log_event(logger, logging.ERROR, "webhook_prune_failed", exc_info=exc)
            return
        if count:
            log_event(
                logger,
                logging.INFO,
                "webhook_deliveries_pruned",
                count=count,
                days=self.policy.keep_days,
            )

    async def _endpoint(self, webhook_id: str) -> None:
        """Deliver one webhook's pending deliveries until none is left (or it is
        disabled or deleted)."""
        while True:
            try:
                webhook = await self.store.get_webhook(webhook_id)
                if webhook is None or webhook.disabled:
                    return
                heads = await self.store.delivery_heads(webhook_id)
                if not heads:
                    return
                now = self.clock()
                due = sorted(i for i, at in heads if at <= now)[:_PARALLEL]
                if due:
                    found = await self.store.get_deliveries(due)
                    await asyncio.gather(*(self._attempt(webhook, d) for d in found))
                    continue
                wait = min(at for _, at in heads) - now
                await asyncio.sleep(max(0.0, min(wait, self.policy.poll_interval)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_event(
                    logger,
                    logging.ERROR,
                    "webhook_dispatch_failed",
                    webhook=webhook_id,
                    exc_info=exc,
                )
                await asyncio.sleep(self.policy.poll_interval)

    async def _attempt(self, webhook: WebhookRecord, delivery: PendingDelivery) -> None:
        at = self.clock()
        try:
            body = delivery.body
            if body is None:
                body = await self.store.set_event_body(
                    delivery.event_id, await self.payloads.body(delivery)
                )
        except Exception as exc:
            # Counted as an attempt, so a body that cannot be made backs off like a
            # receiver that fails (a store that is locked now may not be later).
            log_event(logger, logging.ERROR, "webhook_body_failed", exc_info=exc)
            await self._settle(webhook, delivery, at, None, 0.0, f"cannot make the body: {exc}")
            return
        raw = body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "rtmp-ingest-webhooks",
            "Rtmp-Ingest-Event": delivery.event,
            "Rtmp-Ingest-Event-Id": delivery.event_id,
            HEADER: sign(webhook.secret, int(at), raw),
        }
        assert self._client is not None
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            # httpx's timeout bounds each step; this bounds the whole answer.
            async with (
                asyncio.timeout(self.policy.timeout),
                self._client.stream(
                    "POST", webhook.url, content=raw, headers=headers, timeout=self.policy.timeout
                ) as response,
            ):
                status = response.status_code
        except (httpx.TimeoutException, TimeoutError):
            error = f"timed out after {self.policy.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        latency = time.monotonic() - started
        if status is not None and not 200 <= status < 300:
            error = f"HTTP {status}"
        await self._settle(webhook, delivery, at, status, latency, error)

    async def _settle(
        self,
        webhook: WebhookRecord,
        delivery: PendingDelivery,
        at: float,
        status: int | None,
        latency: float,
        error: str | None,
    ) -> None:
        """Record an attempt and what follows: delivered, tried again later, or given up."""
        delivered = error is None and status is not None
        now = self.clock()
        state: DeliveryState
        if delivered:
            state, next_attempt = "delivered", now
        elif now - delivery.event_at >= self.policy.give_up_after:
            state, next_attempt = "failed", now
            log_event(
                logger,
                logging.WARNING,
                "webhook_gave_up",
                webhook=webhook.id,
                event=delivery.event_id,
                attempts=delivery.attempts + 1,
                error=error,
            )
        else:
            state = "pending"
            next_attempt = now + backoff(delivery.attempts + 1, self.policy, self.rand)
        self.results["retried" if state == "pending" else state] += 1
        if not delivered:
            log_event(
                logger,
                logging.INFO,
                "webhook_attempt_failed",
                webhook=webhook.id,
                event=delivery.event_id,
                kind=delivery.event,
                attempt=delivery.attempts + 1,
                error=error,
                retry_in=round(next_attempt - now, 1) if state == "pending" else None,
            )
        await self.store.record_attempt(
            delivery.id,
            AttemptRecord(at, status, round(latency, 4), error),
            state=state,
            next_attempt=next_attempt,
        )
