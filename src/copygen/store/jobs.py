"""Jobs: tenant-scoped, admitted within the tenant's limits in one transaction (so
simultaneous submissions, on any replica, cannot together pass a limit), claimed by one replica
at a time through a lease (one conditional UPDATE, so two replicas cannot both take a job),
finished item by item (each item's row is written once: its primary key refuses a second), and
their webhook deliveries (one per ended job, stored with it, so any replica resumes it)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, case, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from copygen.domain import Job
from copygen.errors import LimitExceeded
from copygen.store.brands import now
from copygen.store.database import Database, owned
from copygen.store.tables import DeliveryRow, JobItemRow, JobRow

ACTIVE = ("queued", "running")


@dataclass(frozen=True, slots=True)
class JobItem:
    index: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt as a tenant may see it: delivered (``error`` None) or ``failed``; never
    the status or the error met (``status_code`` stays None)."""

    attempt: int
    status_code: int | None
    error: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """An ended job's webhook delivery, claimed for its ``attempt``-th attempt."""

    job: Job
    delivery_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's job limits: jobs queued or running, and items submitted since ``since``."""

    max_active: int
    max_items: int
    since: datetime


def new_job_id() -> str:
    return f"job-{time.time_ns() // 1000:012x}{os.urandom(4).hex()}"


def new_delivery_id() -> str:
    return f"dlv-{os.urandom(12).hex()}"


def tenant_lock_key(tenant: str) -> int:
    """The tenant's PostgreSQL advisory lock (a signed 64-bit key)."""
    digest = hashlib.sha256(f"copygen.jobs:{tenant}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        tenant: str,
        kind: str,
        request: list[dict[str, Any]],
        webhook_url: str | None,
        limits: Limits | None = None,
    ) -> Job:
        """Store a queued job; with ``limits``, only when the tenant stays within them
        (LimitExceeded otherwise, and nothing stored).

        The job is inserted, then the limits counted with it, in one transaction that holds
        the tenant's lock: on PostgreSQL an advisory lock (two transactions cannot both count
        before either inserts), on SQLite the write lock its INSERT takes (one writer at a
        time, held to the commit)."""
        stamp = now()
        row = JobRow(
            id=new_job_id(), tenant=tenant, kind=kind, request=request, status="queued",
            total=len(request), done=0, failed=0, webhook_url=webhook_url, owner=None,
            lease_until=None, created_at=stamp, updated_at=stamp, finished_at=None,
            delivery_id=None, delivery_attempts=0, delivery_due=None,
        )  # fmt: skip
        async with self._db.session() as session:
            if limits is not None and not self._db.sqlite:
                key = literal(tenant_lock_key(tenant), BigInteger)
                await session.execute(select(func.pg_advisory_xact_lock(key)))
            session.add(row)
            await session.flush()
            if limits is not None:
                await _check(session, tenant, limits)
        return _job(row)

    async def get(self, tenant: str, job_id: str) -> Job:
        async with self._db.session() as session:
            row = await owned(session, JobRow, job_id, tenant, "job", "job")
        return _job(row)

    async def items(self, job_id: str) -> list[JobItem]:
        query = select(JobItemRow).where(JobItemRow.job_id == job_id).order_by(JobItemRow.index)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [JobItem(r.index, r.result, r.error) for r in rows]

    async def active(self, tenant: str) -> int:
        query = select(func.count(JobRow.id)).where(
            JobRow.tenant == tenant, JobRow.status.in_(ACTIVE)
        )
        async with self._db.session() as session:
            return int(await session.scalar(query) or 0)

    async def items_since(self, tenant: str, since: datetime) -> int:
        query = select(func.coalesce(func.sum(JobRow.total), 0)).where(
            JobRow.tenant == tenant, JobRow.created_at >= since
        )
        async with self._db.session() as session:
            return int(await session.scalar(query) or 0)

    async def claim(self, owner: str, lease_s: float) -> Job | None:
        """Take the oldest job nobody holds (queued, or running under a lapsed lease)."""
        stamp = now()
        free = or_(JobRow.lease_until.is_(None), JobRow.lease_until < stamp)
        async with self._db.session() as session:
            candidates = (
                await session.scalars(
                    select(JobRow.id)
                    .where(JobRow.status.in_(ACTIVE), free)
                    .order_by(JobRow.created_at)
                    .limit(4)
                )
            ).all()
        for job_id in candidates:
            async with self._db.session() as session:
                taken = await session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.status.in_(ACTIVE), free)
                    .values(
                        owner=owner,
                        lease_until=stamp + timedelta(seconds=lease_s),
                        status="running",
                        updated_at=stamp,
                    )  # fmt: skip
                )
                if taken.rowcount:  # type: ignore[attr-defined]
                    row = await session.get(JobRow, job_id, populate_existing=True)
                    assert row is not None
                    return _job(row)
        return None

    async def renew(self, job_id: str, owner: str, lease_s: float) -> str:
        """Extend the lease; the job's status, or ``lost`` when another replica holds it now
        (a cancelled job stops at the next chunk, a lost one at once)."""
        stamp = now()
        async with self._db.session() as session:
            held = await session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.owner == owner)
                .values(lease_until=stamp + timedelta(seconds=lease_s), updated_at=stamp)
            )
            status = await session.scalar(select(JobRow.status).where(JobRow.id == job_id))
        return str(status) if held.rowcount else "lost"  # type: ignore[attr-defined]

    async def record(self, job_id: str, items: Sequence[JobItem]) -> None:
        """Items finished, and the job's counts, in one transaction."""
        async with self._db.session() as session:
            await _record(session, job_id, items)

    async def finish(self, job_id: str, owner: str | None, status: str) -> bool:
        """End an active job (held by ``owner``, when given); whether this call ended it. A job
        with a webhook gets its delivery in the same statement: ending it and owing the
        receiver a POST are one fact, so no restart can lose the delivery or make two."""
        async with self._db.session() as session:
            return await _finish(session, job_id, owner, status)

    async def fail(self, job_id: str, owner: str, items: Sequence[JobItem]) -> bool:
        """End the job ``failed`` and record ``items`` (its unfinished ones, failed), at once;
        nothing when ``owner`` no longer holds it. Whether this call ended it."""
        async with self._db.session() as session:
            if not await _finish(session, job_id, owner, "failed"):
                return False
            await _record(session, job_id, items)
        return True

    async def release(self, job_id: str, owner: str) -> None:
        """Give a job back at shutdown, so a restart resumes it at once."""
        async with self._db.session() as session:
            await session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.owner == owner)
                .values(owner=None, lease_until=None)
            )

    async def cancel(self, tenant: str, job_id: str) -> tuple[Job, bool]:
        """The job after cancelling it, and whether this call ended it."""
        job = await self.get(tenant, job_id)
        ended = await self.finish(job.id, None, "cancelled")
        return await self.get(tenant, job_id), ended

    async def claim_delivery(self, hold_s: float) -> PendingDelivery | None:
        """Take the delivery due longest ago for one attempt, held for ``hold_s`` (longer than
        the attempt can take): one conditional UPDATE, so two replicas cannot both take it,
        and one whose replica dies mid-attempt is due again when the hold lapses."""
        stamp = now()
        due = JobRow.delivery_due.is_not(None) & (JobRow.delivery_due <= stamp)
        async with self._db.session() as session:
            candidates = (
                await session.scalars(
                    select(JobRow.id).where(due).order_by(JobRow.delivery_due).limit(4)
                )
            ).all()
        for job_id in candidates:
            async with self._db.session() as session:
                taken = await session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, due)
                    .values(
                        delivery_due=stamp + timedelta(seconds=hold_s),
                        delivery_attempts=JobRow.delivery_attempts + 1,
                    )
                )
                if taken.rowcount:  # type: ignore[attr-defined]
                    row = await session.get(JobRow, job_id, populate_existing=True)
                    assert row is not None
                    assert row.delivery_id is not None
                    return PendingDelivery(_job(row), row.delivery_id, row.delivery_attempts)
        return None

    async def attempted(
        self, pending: PendingDelivery, delivered: bool, next_due: datetime | None
    ) -> None:
        """Log an attempt's outcome and set when the next is due (None: no next attempt),
        in one transaction: the log never shows an attempt whose sequel was not stored."""
        async with self._db.session() as session:
            session.add(DeliveryRow(job_id=pending.job.id, attempt=pending.attempt,
                                    status_code=None, error=None if delivered else "failed",
                                    at=now()))  # fmt: skip
            await session.execute(
                update(JobRow)
                .where(JobRow.id == pending.job.id, JobRow.delivery_id == pending.delivery_id)
                .values(delivery_due=next_due)
            )

    async def reschedule_delivery(self, pending: PendingDelivery, due: datetime | None) -> None:
        """Move the delivery's next attempt (``None``: give it up) without logging one."""
        async with self._db.session() as session:
            await session.execute(
                update(JobRow)
                .where(JobRow.id == pending.job.id, JobRow.delivery_id == pending.delivery_id)
                .values(delivery_due=due)
            )

    async def deliveries(self, job_id: str) -> list[Delivery]:
        query = select(DeliveryRow).where(DeliveryRow.job_id == job_id).order_by(DeliveryRow.id)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [Delivery(r.attempt, None, _outcome(r), r.at) for r in rows]

    async def counts(self) -> dict[str, int]:
        """Jobs per status over every tenant, for /metrics."""
        query = select(JobRow.status, func.count(JobRow.id)).group_by(JobRow.status)
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
        return {str(status): int(n) for status, n in rows}


async def _check(session: AsyncSession, tenant: str, limits: Limits) -> None:
    """LimitExceeded when the tenant's jobs, the one just inserted included, pass a limit."""
    active = await session.scalar(
        select(func.count(JobRow.id)).where(JobRow.tenant == tenant, JobRow.status.in_(ACTIVE))
    )
    if int(active or 0) > limits.max_active:
        raise LimitExceeded(f"at most {limits.max_active} jobs queued or running")
    items = await session.scalar(
        select(func.coalesce(func.sum(JobRow.total), 0)).where(
            JobRow.tenant == tenant, JobRow.created_at >= limits.since
        )
    )
    if int(items or 0) > limits.max_items:
        raise LimitExceeded(f"at most {limits.max_items} job items a day")


async def _record(session: AsyncSession, job_id: str, items: Sequence[JobItem]) -> None:
    failed = sum(1 for item in items if item.error is not None)
    session.add_all(JobItemRow(job_id=job_id, index=i.index, result=i.result,
                               error=i.error) for i in items)  # fmt: skip
    await session.execute(
        update(JobRow)
        .where(JobRow.id == job_id)
        .values(done=JobRow.done + len(items), failed=JobRow.failed + failed, updated_at=now())
    )


async def _finish(session: AsyncSession, job_id: str, owner: str | None, status: str) -> bool:
    query = update(JobRow).where(JobRow.id == job_id, JobRow.status.in_(ACTIVE))
    if owner is not None:
        query = query.where(JobRow.owner == owner)
    stamp = now()
    hooked = JobRow.webhook_url.is_not(None)
    ended = await session.execute(
        query.values(
            status=status,
            owner=None,
            lease_until=None,
            finished_at=stamp,
            updated_at=stamp,
            delivery_id=case((hooked, new_delivery_id()), else_=None),
            delivery_due=case((hooked, stamp), else_=None),
        )
    )
    return bool(ended.rowcount)  # type: ignore[attr-defined]


def _outcome(row: DeliveryRow) -> str | None:
    """None (delivered) or ``failed``; older rows kept the status or error met."""
    if row.error is None and (row.status_code is None or 200 <= row.status_code < 300):
        return None
    return "failed"


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id, tenant=row.tenant, kind=row.kind, request=list(row.request),
        status=row.status, total=row.total, done=row.done, failed=row.failed,
        webhook_url=row.webhook_url, created_at=row.created_at, finished_at=row.finished_at,
    )  # fmt: skip
