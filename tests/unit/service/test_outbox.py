"""The webhook outbox over a real SQLite store and a loopback receiver: a job that ends owes
one signed POST, made once and logged; a delivery nobody can sign any more is given up; the
body is the same bytes on every attempt."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from copygen.config import Settings
from copygen.domain import Job
from copygen.errors import InvalidRequest
from copygen.service.brands import BrandBook
from copygen.service.outbox import WebhookOutbox, payload
from copygen.store.database import Database
from copygen.store.jobs import Delivery, JobRepository
from copygen.store.tables import JobRow
from copygen.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER
from tests.unit.api.test_jobs import Receiver

SECRET = "tenant-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(200)
    yield server
    server.server.shutdown()


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[BrandBook]:
    book = BrandBook(Database(f"sqlite+aiosqlite:///{tmp_path / 'copygen.db'}"), 30)
    await book.ready()  # migrated
    yield book
    await book.db.engine.dispose()


def _outbox(book: BrandBook, secret_for: object = lambda tenant: SECRET) -> WebhookOutbox:
    settings = Settings(webhook_allow_private=True, webhook_retries=1, webhook_backoff_s=0.05)
    return WebhookOutbox(JobRepository(book.db), book, settings, secret_for)  # type: ignore[arg-type]


async def _ended_job(repo: JobRepository, url: str) -> Job:
    job = await repo.create("alice", "batch", [{"product": "lamp"}], url)
    assert await repo.finish(job.id, None, "succeeded")  # ending it owes the receiver a POST
    return await repo.get("alice", job.id)


async def _logged(repo: JobRepository, job_id: str) -> list[Delivery]:
    for _ in range(200):
        if found := await repo.deliveries(job_id):
            return found
        await asyncio.sleep(0.01)
    return []


async def test_an_ended_job_gets_one_signed_post_and_it_is_logged(
    book: BrandBook, receiver: Receiver
) -> None:
    outbox = _outbox(book)
    job = await _ended_job(outbox.repo, receiver.url)
    await outbox.start()
    outbox.wake()
    [delivery] = await _logged(outbox.repo, job.id)
    await outbox.stop()
    assert (delivery.attempt, delivery.error) == (1, None)
    [(headers, body)] = receiver.calls
    assert body == payload(job, headers[DELIVERY_HEADER])
    stamp, mac = (part.split("=", 1)[1] for part in headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())
    assert await outbox.repo.claim_delivery(30) is None  # nothing more is owed


async def test_a_delivery_nobody_can_sign_any_more_is_given_up_without_an_attempt(
    book: BrandBook, receiver: Receiver
) -> None:
    asked: list[str] = []

    def no_secret(tenant: str) -> str:
        asked.append(tenant)
        raise InvalidRequest("webhooks need the server's COPYGEN_WEBHOOK_SECRET")

    outbox = _outbox(book, no_secret)
    job = await _ended_job(outbox.repo, receiver.url)
    await outbox.start()
    outbox.wake()
    for _ in range(200):
        if asked and await _delivery_due(book, job.id) is None:
            break
        await asyncio.sleep(0.01)
    await outbox.stop()
    assert asked == ["alice"]
    assert await _delivery_due(book, job.id) is None  # given up, not merely held
    assert receiver.calls == []
    assert await outbox.repo.deliveries(job.id) == []


async def _delivery_due(book: BrandBook, job_id: str) -> datetime | None:
    async with book.db.session() as session:
        row = await session.get(JobRow, job_id)
        assert row is not None
        return row.delivery_due


def test_the_body_names_the_delivery_and_the_jobs_outcome_compactly() -> None:
    job = Job("job_1", "alice", "batch", [], "succeeded", 3, 2, 1, None, datetime(2026, 1, 1), None)
    body = payload(job, "dl_9")
    assert body == payload(job, "dl_9")  # the same on every attempt
    assert b" " not in body
    assert json.loads(body) == {
        "event": "job.finished", "delivery": "dl_9", "job": "job_1", "status": "succeeded",
        "total": 3, "done": 2, "failed": 1,
    }  # fmt: skip
