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
import logging
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from copygen import webhooks
from copygen.budget import TokenBudget, budget_identity, metering
from copygen.cache.codec import result_to_dict
from copygen.config import Settings
from copygen.deadline import Deadline
from copygen.domain import CachePolicy, CopyBrief, Job
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
from copygen.service.outbox import WebhookOutbox
from copygen.service.workflow import CopyWorkflow
from copygen.store.brands import now
from copygen.store.jobs import JobItem, JobRepository, Limits

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
        #: COPYGEN_TOKEN_BUDGET (set by the app, which owns the limiter): a job's items are
        #: charged to its tenant's budget as they run; once spent, they fail rate_limited.
        self.budget: TokenBudget | None = None
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
        """Generate these items, charged to the job's tenant's token budget."""
        meter = self.budget.meter(budget_identity(job.tenant)) if self.budget else None
        with metering(meter):
            return await self._generate(job, indices)

    async def _generate(self, job: Job, indices: Sequence[int]) -> list[JobItem]:
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
