"""Job limits across replicas, against real databases (a SQLite file, a PostgreSQL server):
two runners, each with its own connection pool, take simultaneous submissions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from copygen.config import Settings
from copygen.domain import CopyBrief
from copygen.errors import LimitExceeded
from copygen.service.brands import BrandBook
from copygen.service.jobs import JobRunner
from copygen.store.database import Database
from tests.services import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'copygen.db'}"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        yield postgres.new_database().replace("postgresql://", "postgresql+asyncpg://")


async def replica(url: str, tmp_path: Path, **settings: Any) -> JobRunner:
    """A runner as a replica has one (submitting only: its loop is not started)."""
    book = BrandBook(Database(url), feedback_ttl_days=30)
    await book.ready()
    config = Settings(warmup=False, data_dir=tmp_path, **settings)
    return JobRunner(cast(Any, None), book, config)


async def test_simultaneous_submissions_to_two_replicas_accept_one_job(
    url: str, tmp_path: Path
) -> None:
    replicas = [await replica(url, tmp_path, jobs_max_active=1) for _ in range(2)]
    brief = CopyBrief(product="Solar lamp", channel="sms")
    outcomes = await asyncio.gather(
        *(replicas[n % 2].submit("alice", [(brief, None)], None) for n in range(10)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, LimitExceeded)]
    assert (len(outcomes) - len(refused), len(refused)) == (1, 9), outcomes
    assert await replicas[0].repo.active("alice") == 1
    other = await replicas[1].submit("bob", [(brief, None)], None)  # another tenant's budget
    assert other.status == "queued"
    for runner in replicas:
        await runner.book.db.close()


async def test_simultaneous_submissions_never_exceed_the_daily_items(
    url: str, tmp_path: Path
) -> None:
    replicas = [
        await replica(url, tmp_path, jobs_max_active=100, jobs_max_items_per_day=5)
        for _ in range(2)
    ]
    brief = CopyBrief(product="Solar lamp", channel="sms")
    outcomes = await asyncio.gather(
        *(replicas[n % 2].submit("alice", [(brief, None)] * 2, None) for n in range(10)),
        return_exceptions=True,
    )
    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(accepted) == 2, outcomes  # 2 + 2 items; a third job would make 6 > 5
    for runner in replicas:
        await runner.book.db.close()


async def test_an_ended_jobs_delivery_is_taken_by_one_replica_per_attempt(
    url: str, tmp_path: Path
) -> None:
    """The delivery is stored with the job when it ends; an attempt holds it (another replica
    cannot take it), the next attempt keeps its id, a replica that dies mid-attempt lets it go
    when the hold lapses, and the log shows outcomes only (rows written before 0003, which kept
    a status, read the same)."""
    from copygen.store.brands import now
    from copygen.store.tables import DeliveryRow

    first, second = [await replica(url, tmp_path) for _ in range(2)]
    job = await first.repo.create("alice", "batch", [{"n": 1}], "https://example.com/hook")
    assert await first.repo.claim_delivery(30) is None  # not ended yet
    cancelled, ended = await first.repo.cancel("alice", job.id)
    assert (cancelled.status, ended) == ("cancelled", True)
    assert (await first.repo.cancel("alice", job.id))[1] is False  # ended once: one delivery
    taken = await first.repo.claim_delivery(30)
    assert taken is not None
    assert (taken.job.id, taken.job.status, taken.attempt) == (job.id, "cancelled", 1)
    assert await second.repo.claim_delivery(30) is None  # held
    await first.repo.attempted(taken, delivered=False, next_due=now())
    again = await second.repo.claim_delivery(0.2)
    assert again is not None
    assert (again.delivery_id, again.attempt) == (taken.delivery_id, 2)
    await asyncio.sleep(0.3)  # its replica died mid-attempt: the hold lapses
    third = await first.repo.claim_delivery(30)
    assert third is not None
    assert (third.delivery_id, third.attempt) == (taken.delivery_id, 3)
    await first.repo.attempted(third, delivered=True, next_due=None)
    assert await second.repo.claim_delivery(30) is None  # delivered: nothing more to do
    async with first.book.db.session() as session:
        session.add(DeliveryRow(job_id=job.id, attempt=9, status_code=503, error=None, at=now()))
    log = await second.repo.deliveries(job.id)
    assert [(d.attempt, d.status_code, d.error) for d in log] == [
        (1, None, "failed"), (3, None, None), (9, None, "failed"),
    ]  # fmt: skip
    plain = await first.repo.create("alice", "batch", [{"n": 1}], None)
    await first.repo.cancel("alice", plain.id)
    assert await first.repo.claim_delivery(30) is None  # no webhook, no delivery
    for runner in (first, second):
        await runner.book.db.close()
