"""The store against real databases: a SQLite file and a PostgreSQL server (a fresh database
of a throwaway cluster per test). Same tests, both engines."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from copygen.domain import MAX_EXAMPLES, BrandExample, BrandProfile
from copygen.errors import InvalidRequest, NotFound, PreconditionFailed, StoreUnavailable
from copygen.service.brands import BrandBook
from copygen.store.database import Database
from copygen.store.feedback import StoredResponse
from copygen.store.tables import Base
from tests.services import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'copygen.db'}"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.new_database().replace("postgresql://", "postgresql+asyncpg://")
    database = Database(url)
    yield database
    await database.close()


@pytest.fixture
async def book(db: Database) -> BrandBook:
    book = BrandBook(db, feedback_ttl_days=30)
    await book.ready()
    return book


ACME = BrandProfile(
    name="Acme",
    voice="Plain and warm",
    preferred_terms=("sunny",),
    forbidden_terms=("cheap",),
    facts=("Founded in 1999",),
    examples=(BrandExample("sms", "Sunny days ahead with Acme"),),
)


async def test_migrations_build_every_table_from_an_empty_database(db: Database) -> None:
    await db.migrate()
    await db.migrate()  # at head: nothing to do

    def tables(connection: object) -> dict[str, set[str]]:
        inspector = inspect(connection)
        return {
            name: {column["name"] for column in inspector.get_columns(name)}
            for name in inspector.get_table_names()
        }

    async with db.engine.connect() as connection:
        found = await connection.run_sync(tables)
    expected = {table.name: set(table.columns.keys()) for table in Base.metadata.tables.values()}
    assert found.pop("alembic_version") == {"version_num"}
    assert found == expected


async def test_a_tenant_never_sees_or_changes_another_tenants_brand(book: BrandBook) -> None:
    mine = await book.brands.create("alice", ACME)
    assert (await book.brands.get("alice", mine.id)).profile == ACME
    assert await book.brands.page("bob", None, 10) == []
    for attempt in (
        book.brands.get("bob", mine.id),
        book.brands.replace("bob", mine.id, ACME, None),
        book.brands.delete("bob", mine.id, None),
        book.voice("bob", mine.id),
    ):
        with pytest.raises(NotFound):
            await attempt
    assert (await book.brands.get("alice", mine.id)).version == 1


async def test_a_write_with_a_stale_version_fails_and_changes_nothing(book: BrandBook) -> None:
    brand = await book.brands.create("t", ACME)
    renamed = dataclasses.replace(ACME, name="Acme Corp")
    written = await book.brands.replace("t", brand.id, renamed, expected=1)
    assert written.version == 2
    with pytest.raises(PreconditionFailed):
        await book.brands.replace("t", brand.id, ACME, expected=1)
    with pytest.raises(PreconditionFailed):
        await book.brands.delete("t", brand.id, expected=1)
    stored = await book.brands.get("t", brand.id)
    assert (stored.version, stored.profile.name) == (2, "Acme Corp")


async def test_concurrent_writes_without_a_version_all_apply(book: BrandBook) -> None:
    brand = await book.brands.create("t", dataclasses.replace(ACME, examples=()))
    examples = [BrandExample("sms", f"Example number {i}") for i in range(6)]
    await asyncio.gather(*(book.brands.add_example("t", brand.id, e) for e in examples))
    stored = await book.brands.get("t", brand.id)
    assert sorted(e.text for e in stored.profile.examples) == sorted(e.text for e in examples)
    assert stored.version == 7


async def test_a_brand_holds_at_most_50_examples(book: BrandBook) -> None:
    full = tuple(BrandExample("sms", f"Example {i}") for i in range(MAX_EXAMPLES))
    brand = await book.brands.create("t", dataclasses.replace(ACME, examples=full))
    with pytest.raises(InvalidRequest):
        await book.brands.add_example("t", brand.id, BrandExample("sms", "one more"))
    # the same text again is not a new example
    assert (await book.brands.add_example("t", brand.id, full[0])).version == 2


async def test_brands_page_oldest_first(book: BrandBook) -> None:
    ids = [(await book.brands.create("t", ACME)).id for _ in range(5)]
    first = await book.brands.page("t", None, 2)
    rest = await book.brands.page("t", first[-1].id, 10)
    assert [b.id for b in first + rest] == ids


async def test_feedback_on_a_remembered_response_exports_preference_pairs(
    book: BrandBook,
) -> None:
    brand = await book.brands.create("t", dataclasses.replace(ACME, auto_learn=True))
    prompt = (("system", "rules"), ("user", "brief"))
    response = StoredResponse("copy-1", brand.id, "sms", prompt, ("First", "Second", "Third"))
    await book.feedback.remember("t", [response])
    up, learned = await book.rate("t", "copy-1", "Second", "up", None, None)
    down, _ = await book.rate("t", "copy-1", 2, "down", None, "too pushy")
    edit, _ = await book.rate("t", "copy-1", 0, "up", "First, better", None)
    assert learned is not None
    assert [e.text for e in learned.profile.examples][-1] == "Second"
    with pytest.raises(NotFound):
        await book.rate("other", "copy-1", 0, "up", None, None)
    with pytest.raises(InvalidRequest):
        await book.rate("t", "copy-1", 7, "up", None, None)

    pairs, cursor = await book.export("t", brand.id, None, 0, 10)
    assert cursor is None
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        ("Second", "First"),
        ("First", "Third"),
        ("First, better", "First"),
    ]
    assert pairs[0]["prompt"] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "brief"},
    ]
    page, cursor = await book.export("t", None, None, 0, 2)
    assert (len(page), cursor) == (2, down.id)
    page, cursor = await book.export("t", None, None, cursor, 2)
    assert ([p["feedback_id"] for p in page], cursor) == ([edit.id], None)

    voice = await book.voice("t", brand.id)
    assert (voice.avoid, voice.learned) == (("Third",), down.id)
    await book.refresh_figures()  # what the background does after writes
    assert book.figures["up"] == 2
    assert book.figures["down"] == 1
    assert up.id < down.id < edit.id


async def test_responses_past_the_feedback_window_cannot_be_rated(db: Database) -> None:
    book = BrandBook(db, feedback_ttl_days=0)
    await book.ready()
    response = StoredResponse("copy-old", None, "sms", (), ("Only",))
    await book.feedback.remember("t", [response])
    with pytest.raises(NotFound):
        await book.rate("t", "copy-old", 0, "up", None, None)
    assert await book.feedback.purge() == 1


def test_copygen_migrate_builds_the_schema_and_says_so(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    def migrate(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "copygen", "migrate"],
            env={**os.environ, "COPYGEN_DATA_DIR": str(tmp_path), **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = migrate()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith('{"database": "sqlite", "migrated": true}')
    assert (tmp_path / "copygen.db").exists()
    failed = migrate(COPYGEN_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert failed.returncode == 1
    assert "could not be migrated" in failed.stderr


async def test_a_database_that_dies_answers_503_and_copy_goes_on() -> None:
    """PostgreSQL stopped under a running app: brand and feedback routes answer 503
    store_unavailable with Retry-After (never a 500), copy without a brand is still written,
    and after the server comes back on the same port the routes work again."""
    import httpx

    from copygen.api.app import create_app
    from copygen.config import Settings
    from copygen.engine.engine import Engine
    from tests.client import wait_ready
    from tests.fakes import FakeRunner

    server = PostgresServer()
    server.start()
    try:
        config = Settings(warmup=False, database_url=server.url())  # type: ignore[arg-type]
        app = create_app(config, engine=Engine(config, FakeRunner()))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            await wait_ready(c)
            brand = (await c.post("/v1/brands", json={"name": "Acme"})).json()
            server.stop()
            down = [
                await c.post("/v1/brands", json={"name": "Other"}),
                await c.get(f"/v1/brands/{brand['id']}"),
                await c.post("/v1/copy", json={"product": "Lamp", "brand": brand["id"]}),
                await c.post(
                    "/v1/feedback", json={"copy_id": "copy-x", "variant": 0, "rating": "up"}
                ),  # fmt: skip
            ]
            assert [(r.status_code, r.json()["error"]["type"]) for r in down] == [
                (503, "store_unavailable")
            ] * 4
            assert all(r.headers["retry-after"] for r in down)
            assert (await c.post("/v1/copy", json={"product": "Lamp"})).status_code == 200
            server.start()
            back = await c.get(f"/v1/brands/{brand['id']}")
            assert (back.status_code, back.json()["name"]) == (200, "Acme")
    finally:
        server.remove()


async def test_a_job_is_held_by_one_replica_until_its_lease_lapses(book: BrandBook) -> None:
    from copygen.store.jobs import JobItem, JobRepository

    jobs = JobRepository(book.db)
    job = await jobs.create("t", "batch", [{"n": 1}, {"n": 2}], None)
    first = await jobs.claim("replica-a", lease_s=0.3)
    assert first is not None
    assert first.status == "running"
    assert await jobs.claim("replica-b", lease_s=0.3) is None  # held
    await jobs.record(job.id, [JobItem(0, {"ok": True}, None)])
    await asyncio.sleep(0.4)  # replica-a stops renewing (killed)
    second = await jobs.claim("replica-b", lease_s=30)
    assert second is not None
    assert (second.id, second.done) == (job.id, 1)
    assert await jobs.renew(job.id, "replica-a", 30) == "lost"
    assert await jobs.renew(job.id, "replica-b", 30) == "running"
    with pytest.raises(StoreUnavailable):  # an item's result is written once, ever
        await jobs.record(job.id, [JobItem(0, {"ok": False}, None)])
    await jobs.finish(job.id, "replica-b", "succeeded")
    assert [i.result for i in await jobs.items(job.id)] == [{"ok": True}]
    assert (await jobs.get("t", job.id)).status == "succeeded"


async def test_an_outage_at_start_keeps_a_bounded_queue_and_recovers_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database cannot be opened at start (a file stands where its directory should be):
    responses queue up to MAX_PENDING (the rest counted as failures, never unbounded), the
    background loop retries the migration, and once the database is there the queue is
    written."""
    from copygen import service
    from copygen.domain import CopyBrief, CopyResult, Variant

    monkeypatch.setattr(service.brands, "MAX_PENDING", 3)
    monkeypatch.setattr(service.brands, "RETRY_S", 0.05)
    monkeypatch.setattr(service.brands, "FLUSH_S", 0.02)
    directory = tmp_path / "later"
    book = BrandBook(Database(f"sqlite+aiosqlite:///{directory / 'copygen.db'}"), 30)
    directory.rmdir()
    directory.write_text("not a directory")
    await book.start()
    assert book.status()["migrated"] is False
    brief = CopyBrief(product="Solar charger", channel="sms")
    variant = Variant("Go solar", 8, 160, True, (), 0.9)
    results = [CopyResult(f"copy-{i}", "m", "sms", [variant], 1) for i in range(5)]
    book.remember("t", [brief] * 5, results)
    assert (book.status()["responses_pending"], book.remember_failures) == (3, 2)
    with pytest.raises(StoreUnavailable):
        await book.rate("t", "copy-0", 0, "up", None, None)

    directory.unlink()
    directory.mkdir()
    for _ in range(200):  # bounded: 4 s
        if book.migrated and not book.status()["responses_pending"]:
            break
        await asyncio.sleep(0.02)
    assert book.migrated
    assert book.status()["responses_pending"] == 0
    stored = await book.feedback.response("t", "copy-2")
    assert stored.variants == ("Go solar",)
    with pytest.raises(NotFound):  # dropped at the cap, as counted
        await book.feedback.response("t", "copy-4")
    await book.stop()
