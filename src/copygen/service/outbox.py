"""The webhook outbox: the deliveries the store owes (one per ended job with a webhook), made
by whichever replica takes one that is due; every attempt carries the delivery's id, and its
outcome and next due time are stored together, so a restart goes on where it stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import timedelta

from copygen import webhooks
from copygen.config import Settings
from copygen.domain import Job
from copygen.errors import CopygenError, InvalidRequest
from copygen.service.brands import BrandBook
from copygen.store.brands import now
from copygen.store.jobs import JobRepository, PendingDelivery

log = logging.getLogger("copygen.jobs")

IDLE_S = 0.5
BACKOFF_S = 2.0
#: Webhook attempts one replica makes at once (each bounded by COPYGEN_WEBHOOK_TIMEOUT_S).
DELIVERY_SLOTS = 8
#: How often a replica looks for due deliveries it was not told of (another replica's, or
#: those a stopped process left); its own retries wake it when due.
DELIVERY_POLL_S = 1.0
#: An attempt is held this long past its timeout before another replica may take it over.
DELIVERY_HOLD_MARGIN_S = 10.0
#: How long stopping waits for attempts in progress to hand their deliveries back.
STOP_WAIT_S = 5.0


class WebhookOutbox:
    """Makes the webhook deliveries the store owes (one per ended job with a webhook): any
    replica takes one that is due, holds it for an attempt, and logs the outcome and stores
    when the next attempt is due in one transaction, so a restart or another replica goes on
    where this one stopped. Every attempt carries the delivery's id."""

    def __init__(
        self,
        repo: JobRepository,
        book: BrandBook,
        settings: Settings,
        secret_for: Callable[[str], str],
    ) -> None:
        self.repo = repo
        self.book = book
        self.settings = settings
        self.secret_for = secret_for
        #: Resolves webhook hosts (for the check at submission and for each attempt).
        self.resolve: webhooks.Resolver = webhooks.resolve_host
        self._woken = asyncio.Event()
        self._slots = asyncio.Semaphore(DELIVERY_SLOTS)
        self._task: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="copygen-webhooks")

    async def stop(self) -> None:
        """Stop; attempts in progress hand their deliveries back (due at once)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        attempts = list(self._attempts)
        for task in attempts:
            task.cancel()
        if attempts:
            await asyncio.wait(attempts, timeout=STOP_WAIT_S)

    def wake(self, after_s: float = 0.0) -> None:
        """A delivery is due (now, or ``after_s`` from now): look without waiting for the poll."""
        asyncio.get_running_loop().call_later(after_s, self._woken.set)

    async def _loop(self) -> None:
        hold_s = self.settings.webhook_timeout_s + DELIVERY_HOLD_MARGIN_S
        while True:
            try:
                if not self.book.migrated:
                    await asyncio.sleep(IDLE_S)
                    continue
                await self._slots.acquire()
                self._woken.clear()
                try:
                    pending = await self.repo.claim_delivery(hold_s)
                except BaseException:
                    self._slots.release()
                    raise
                if pending is None:
                    self._slots.release()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._woken.wait(), DELIVERY_POLL_S)
                    continue
                task = asyncio.create_task(self._attempt(pending), name="copygen-webhook")
                self._attempts.add(task)
                task.add_done_callback(self._attempted)
            except CopygenError as exc:
                log.warning("webhook outbox: %s", exc.type)
                await asyncio.sleep(BACKOFF_S)
            except Exception:
                log.exception("webhook outbox: unexpected error")
                await asyncio.sleep(BACKOFF_S)

    def _attempted(self, task: asyncio.Task[None]) -> None:
        self._attempts.discard(task)
        self._slots.release()

    async def _attempt(self, pending: PendingDelivery) -> None:
        """One attempt; the outcome is logged with the next attempt's due time (if any)."""
        job, settings = pending.job, self.settings
        try:
            if job.webhook_url is None or pending.attempt > settings.webhook_retries + 1:
                # The last attempt was cut short (its process died in it): retries are spent.
                await self.repo.reschedule_delivery(pending, None)
                return
            try:
                secret = self.secret_for(job.tenant)
            except InvalidRequest:  # the server's secret was removed since: nothing can sign
                log.warning("job %s: webhook dropped: no COPYGEN_WEBHOOK_SECRET", job.id)
                await self.repo.reschedule_delivery(pending, None)
                return
            outcome = await webhooks.deliver(
                job.webhook_url, secret, payload(job, pending.delivery_id),
                delivery_id=pending.delivery_id, attempt=pending.attempt,
                timeout_s=settings.webhook_timeout_s,
                allow_private=settings.webhook_allow_private, resolve=self.resolve,
            )  # fmt: skip
            # The status or error met goes to the server's log, never to the tenant.
            log.info("job %s: webhook attempt %d: %s", job.id, pending.attempt,
                     outcome.status_code or outcome.error)  # fmt: skip
            retry = not (outcome.delivered or outcome.refused)
            retry = retry and pending.attempt <= settings.webhook_retries
            delay_s = settings.webhook_backoff_s * 4 ** (pending.attempt - 1)
            due = now() + timedelta(seconds=delay_s) if retry else None
            await self.repo.attempted(pending, outcome.delivered, due)
            if retry:
                self.wake(delay_s)
        except asyncio.CancelledError:
            # Stopping: hand the delivery back, due now, rather than have it wait out its hold.
            with contextlib.suppress(CopygenError):
                await self.repo.reschedule_delivery(pending, now())
            raise
        except CopygenError as exc:  # the store failed: the hold lapses and it is tried again
            log.warning("job %s: webhook attempt: %s", job.id, exc.type)
        except Exception:
            log.exception("job %s: webhook attempt: unexpected error", job.id)


def payload(job: Job, delivery_id: str) -> bytes:
    """The delivery's body: the same on every attempt (the signature covers the id too)."""
    body = {
        "event": "job.finished", "delivery": delivery_id, "job": job.id, "status": job.status,
        "total": job.total, "done": job.done, "failed": job.failed,
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()
