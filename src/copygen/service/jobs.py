"""Jobs: long batches run in the background, stored so they survive a restart.

A submitted job's briefs are stored; a replica claims it with a lease (renewed after every
chunk of items), writes each finished item once, and a job whose lease lapses (its process was
killed) is resumed by whichever replica claims it next, from its first unfinished item. A job
whose run meets a bug (an exception that is no CopygenError) fails, once: another replica would
meet the same bug. When a job ends, its webhook is owed one signed POST, stored with the job and
retried with backoff by whichever replica is up (the same delivery id on every attempt); every
attempt is logged, with its outcome only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from copygen import webhooks
from copygen.cache.codec import result_to_dict
from copygen.config import Settings
from copygen.deadline import Deadline
from copygen.domain import CachePolicy, CopyBrief
from copygen.errors import (
    BackendOverloaded,
    BackendUnavailable,
    CircuitOpen,
    CopygenError,
    Draining,
    InvalidRequest,
    MemoryPressure,
    ModelUnavailable,
    NotFound,
    NotReady,
    QueueFull,
    StoreUnavailable,
)
from copygen.service import assets
from copygen.service.brands import BrandBook, with_brand
from copygen.service.workflow import CopyWorkflow
from copygen.store.brands import now
from copygen.store.jobs import Job, JobItem, JobRepository, Limits, PendingDelivery

log = logging.getLogger("copygen.jobs")

#: Errors that say the service cannot generate now, not that these items cannot be made: the
#: job is given back and tried again later.
TRANSIENT = (
    Draining, NotReady, CircuitOpen, QueueFull, MemoryPressure, BackendOverloaded,
    BackendUnavailable, ModelUnavailable, StoreUnavailable,
)  # fmt: skip
#: Where an asset job's brief keeps the route's own fields (final URL, counts, paths).
ASSET_FIELDS = "_asset"
#: Items generated together (they share forward passes); the lease is renewed between chunks.
CHUNK = 8
IDLE_S = 0.5
#: After a chunk failed for a reason of the service (draining, breaker open, overload), the
#: job is given back and tried again this much later.
BACKOFF_S = 2.0
#: What the items of a job that met a bug say (the exception itself goes to the log only).
INTERNAL_ERROR: dict[str, Any] = {
    "type": "internal_error", "message": "internal error", "field": None,
}  # fmt: skip
#: Webhook attempts one replica makes at once (each bounded by COPYGEN_WEBHOOK_TIMEOUT_S).
DELIVERY_SLOTS = 8
#: How often a replica looks for due deliveries it was not told of (another replica's, or
#: those a stopped process left); its own retries wake it when due.
DELIVERY_POLL_S = 1.0
#: An attempt is held this long past its timeout before another replica may take it over.
DELIVERY_HOLD_MARGIN_S = 10.0
#: How long stopping waits for attempts in progress to hand their deliveries back.
STOP_WAIT_S = 5.0


def brief_to_dict(brief: CopyBrief, brand_id: str | None) -> dict[str, Any]:
    """A brief as stored with its job: the brand by id (resolved again when the item runs)."""
    data = dataclasses.asdict(dataclasses.replace(brief, brand=None))
    data["cache"] = brief.cache.value
    data["brand"] = brand_id
    return data


def brief_from_dict(data: dict[str, Any]) -> tuple[CopyBrief, str | None]:
    fields = dict(data)
    brand_id = fields.pop("brand", None)
    for name in ("keywords", "banned_words", "facts"):
        fields[name] = tuple(fields[name])
    fields["cache"] = CachePolicy(fields["cache"])
    return CopyBrief(**fields), brand_id


class JobRunner:
    def __init__(self, copywriter: CopyWorkflow, book: BrandBook, settings: Settings) -> None:
        self.copywriter = copywriter
        self.book = book
        self.settings = settings
        self.repo = JobRepository(book.db)
        self.owner = f"{socket.gethostname()[:24]}-{os.urandom(4).hex()}"
        self.items_done_total = 0
        self.figures: dict[str, int] = {}
        self.outbox = WebhookOutbox(self.repo, book, settings, self.secret_for)
        self._current: str | None = None
        self._task: asyncio.Task[None] | None = None
        #: Submissions check the limits one at a time here (the store's transaction makes it
        #: hold across replicas; this lock spares SQLite's writers polling for its lock).
        self._submitting = asyncio.Lock()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="copygen-jobs")
        await self.outbox.start()

    async def stop(self) -> None:
        """Stop taking items; the job in hand is given back so a restart resumes it at once."""
        current = self._current
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if current is not None:
            with contextlib.suppress(CopygenError):
                await self.repo.release(current, self.owner)
        await self.outbox.stop()

    # --- submitting ---------------------------------------------------------------------

    def secret_for(self, tenant: str) -> str:
        if self.settings.webhook_secret is None:
            raise InvalidRequest(
                "webhooks need the server's COPYGEN_WEBHOOK_SECRET", field="webhook_url"
            )
        return webhooks.tenant_secret(self.settings.webhook_secret.get_secret_value(), tenant)

    async def submit(
        self,
        tenant: str,
        briefs: Sequence[tuple[CopyBrief, str | None]],
        webhook_url: str | None,
        kind: str = "batch",
        asset: dict[str, Any] | None = None,
    ) -> Job:
        """Store a job of ``briefs`` (each with its brand id), within the tenant's limits; an
        asset kind (``google-ads-rsa``, ``meta-ad``) has one brief and its ``asset`` fields."""
        await self.book.ready()
        settings = self.settings
        if webhook_url is not None:
            self.secret_for(tenant)
            await webhooks.check_target(
                webhook_url, settings.webhook_allow_private, self.outbox.resolve
            )
        request = [brief_to_dict(brief, brand) for brief, brand in briefs]
        if asset is not None:
            request[0][ASSET_FIELDS] = asset
        limits = Limits(
            settings.jobs_max_active, settings.jobs_max_items_per_day, now() - timedelta(days=1)
        )
        async with self._submitting:
            job = await self.repo.create(tenant, kind, request, webhook_url, limits)
        await self.refresh_figures()
        return job

    async def cancel(self, tenant: str, job_id: str) -> Job:
        """Stop the job after the items in progress (finished ones stay); its webhook hears
        of it like of any other end."""
        job, ended = await self.repo.cancel(tenant, job_id)
        await self.refresh_figures()
        if ended and job.webhook_url:
            self.outbox.wake()
        return job

    async def refresh_figures(self) -> None:
        with contextlib.suppress(CopygenError):
            self.figures = await self.repo.counts()

    # --- running ------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            try:
                if not self.book.migrated or not self.copywriter.generators.ready:
                    await asyncio.sleep(IDLE_S)
                    continue
                job = await self.repo.claim(self.owner, self.settings.job_lease_s)
                if job is None:
                    await asyncio.sleep(IDLE_S)
                    continue
                self._current = job.id
                heartbeat = asyncio.create_task(self._heartbeat(job.id), name="copygen-job-lease")
                try:
                    await self._run(job)
                except CopygenError:
                    raise
                except Exception:
                    log.exception("job %s failed: unexpected error", job.id)
                    await self._fail(job)
                finally:
                    heartbeat.cancel()
            except CopygenError as exc:
                log.warning("job runner: %s", exc.type)
                await asyncio.sleep(BACKOFF_S)
            except Exception:  # a bug outside any job: the loop outlives it
                log.exception("job runner: unexpected error")
                await asyncio.sleep(BACKOFF_S)
            finally:
                self._current = None

    async def _heartbeat(self, job_id: str) -> None:
        """Keep the lease while a chunk runs longer than it (a CPU can take that long)."""
        while True:
            await asyncio.sleep(self.settings.job_lease_s / 3)
            with contextlib.suppress(CopygenError):
                await self.repo.renew(job_id, self.owner, self.settings.job_lease_s)

    async def _run(self, job: Job) -> None:
        await self.refresh_figures()
        finished = {item.index for item in await self.repo.items(job.id)}
        pending = [i for i in range(job.total) if i not in finished]
        log.info("job %s: %d of %d items to go", job.id, len(pending), job.total)
        for start in range(0, len(pending), CHUNK):
            status = await self.repo.renew(job.id, self.owner, self.settings.job_lease_s)
            if status != "running":
                return  # cancelled meanwhile, or another replica took it over
            chunk = pending[start : start + CHUNK]
            try:
                items = await self._items(job, chunk)
            except TRANSIENT as exc:
                # The service cannot generate now (draining, breaker, overload): give the job
                # back rather than record items as failed.
                log.warning("job %s paused: %s", job.id, exc.type)
                await self.repo.release(job.id, self.owner)
                await asyncio.sleep(BACKOFF_S)
                return
            except CopygenError as exc:  # these items failed (a deadline, a model error)
                items = [JobItem(index, None, _error(exc)) for index in chunk]
            await self.repo.record(job.id, items)
            self.items_done_total += len(items)
        if await self.repo.finish(job.id, self.owner, "succeeded") and job.webhook_url:
            self.outbox.wake()
        await self.refresh_figures()
        log.info("job %s finished", job.id)

    async def _fail(self, job: Job) -> None:
        """End a job that met a bug: its unfinished items fail with INTERNAL_ERROR, and the job
        with ``failed`` (never active again, so no replica claims it and meets the bug)."""
        finished = {item.index for item in await self.repo.items(job.id)}
        items = [JobItem(i, None, dict(INTERNAL_ERROR)) for i in range(job.total)
                 if i not in finished]  # fmt: skip
        if await self.repo.fail(job.id, self.owner, items):
            self.items_done_total += len(items)
            if job.webhook_url:
                self.outbox.wake()
        await self.refresh_figures()

    async def _items(self, job: Job, indices: Sequence[int]) -> list[JobItem]:
        """Generate these items; an item whose brand is gone fails alone."""
        items: list[JobItem] = []
        runnable: list[tuple[int, CopyBrief]] = []
        for index in indices:
            stored = dict(job.request[index])
            asset = stored.pop(ASSET_FIELDS, None)
            brief, brand_id = brief_from_dict(stored)
            if brand_id is not None:
                try:
                    voice = await self.book.voice(job.tenant, brand_id)
                except NotFound as exc:
                    items.append(JobItem(index, None, _error(exc)))
                    continue
                brief = with_brand(brief, voice, {"tone", "audience"})
            if asset is not None:
                items.append(JobItem(index, await self._asset(job, brief, asset), None))
                continue
            runnable.append((index, brief))
        if runnable:
            results = await self.copywriter.generate_many(
                [brief for _, brief in runnable],
                Deadline.within(self.settings.request_timeout_s),  # a chunk is its own request
                tenant=job.tenant,
            )
            for (index, _), result in zip(runnable, results, strict=True):
                items.append(JobItem(index, result_to_dict(result), None))
        return sorted(items, key=lambda item: item.index)

    async def _asset(self, job: Job, brief: CopyBrief, asset: dict[str, Any]) -> dict[str, Any]:
        """An asset job's one item: the set, as the asset route would make it."""
        if job.kind == "google-ads-rsa":
            made, paths = await assets.google_rsa(
                self.copywriter, brief, asset["headlines"], asset["descriptions"],
                (asset["path1"], asset["path2"]), job.tenant,
            )  # fmt: skip
            return {**assets.asset_to_dict(made), "paths": list(paths)}
        made = await assets.meta_ad(
            self.copywriter, brief, asset["primary_texts"], asset["headlines"],
            asset["descriptions"], job.tenant,
        )  # fmt: skip
        return assets.asset_to_dict(made)


def _error(exc: CopygenError) -> dict[str, Any]:
    return {"type": exc.type, "message": exc.message, "field": exc.field}


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
