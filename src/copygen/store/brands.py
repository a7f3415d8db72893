"""Brands: tenant-scoped CRUD with optimistic concurrency. Every query names the tenant, so
one tenant's brand is "not found" to every other tenant. A write states the version it read
(If-Match) or not; either way it is one conditional UPDATE, so two replicas cannot both win."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from copygen.domain import MAX_EXAMPLES, Brand, BrandExample, BrandProfile
from copygen.errors import InvalidRequest, NotFound, PreconditionFailed
from copygen.store.database import Database, owned
from copygen.store.tables import BrandRow

#: Read-merge-write attempts of a write without If-Match before giving up (412). Each round
#: of concurrent writers lets at least one through, so this many writers of one brand at once
#: all get in; a jittered pause between attempts spreads them out.
WRITE_ATTEMPTS = 20
RETRY_PAUSE_S = 0.005


def new_brand_id() -> str:
    """``brand-``, 12 hex digits of creation time (ids sort by age: pages are stable), 8
    random ones."""
    return f"brand-{time.time_ns() // 1000:012x}{os.urandom(4).hex()}"


def now() -> datetime:
    """Timestamps are stored as naive UTC (SQLite has no time zones)."""
    return datetime.now(UTC).replace(tzinfo=None)


class BrandRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, tenant: str, profile: BrandProfile) -> Brand:
        stamp = now()
        row = BrandRow(
            id=new_brand_id(), tenant=tenant, version=1, created_at=stamp, updated_at=stamp,
            **_columns(profile),
        )  # fmt: skip
        async with self._db.session() as session:
            session.add(row)
        return _brand(row)

    async def get(self, tenant: str, brand_id: str) -> Brand:
        async with self._db.session() as session:
            row = await owned(session, BrandRow, brand_id, tenant, "brand", "brand")
        return _brand(row)

    async def page(self, tenant: str, after: str | None, limit: int) -> list[Brand]:
        """Up to ``limit`` brands, oldest first, after the brand id ``after``."""
        query = select(BrandRow).where(BrandRow.tenant == tenant)
        if after is not None:
            query = query.where(BrandRow.id > after)
        async with self._db.session() as session:
            rows = (await session.scalars(query.order_by(BrandRow.id).limit(limit))).all()
        return [_brand(row) for row in rows]

    async def replace(
        self, tenant: str, brand_id: str, profile: BrandProfile, expected: int | None
    ) -> Brand:
        """Write ``profile`` when the stored version is ``expected`` (any version when None)."""
        query = update(BrandRow).where(BrandRow.tenant == tenant, BrandRow.id == brand_id)
        if expected is not None:
            query = query.where(BrandRow.version == expected)
        values = {**_columns(profile), "version": BrandRow.version + 1, "updated_at": now()}
        async with self._db.session() as session:
            changed = (await session.execute(query.values(**values))).rowcount  # type: ignore[attr-defined]
            row = await session.get(BrandRow, brand_id, populate_existing=True)
        return _written(row, tenant, changed)

    async def update(
        self,
        tenant: str,
        brand_id: str,
        change: Callable[[BrandProfile], BrandProfile],
        expected: int | None,
    ) -> Brand:
        """Read, apply ``change(profile) -> profile`` and write back, conditional on the version
        read (or ``expected``); retried when another write came in between and no version was
        asked for."""
        for _ in range(WRITE_ATTEMPTS):
            current = await self.get(tenant, brand_id)
            if expected is not None and current.version != expected:
                raise PreconditionFailed(_STALE)
            try:
                changed = change(current.profile)
                return await self.replace(tenant, brand_id, changed, current.version)
            except PreconditionFailed:
                if expected is not None:
                    raise
            await asyncio.sleep(random.uniform(0, RETRY_PAUSE_S))
        raise PreconditionFailed(_STALE)

    async def delete(self, tenant: str, brand_id: str, expected: int | None) -> None:
        async with self._db.session() as session:
            row = await owned(session, BrandRow, brand_id, tenant, "brand", "brand")
            if expected is not None and row.version != expected:
                raise PreconditionFailed(_STALE)
            await session.delete(row)

    async def add_example(
        self, tenant: str, brand_id: str, example: BrandExample, expected: int | None = None
    ) -> Brand:
        """Append ``example`` (unless the brand already holds that text for that channel)."""

        def add(profile: BrandProfile) -> BrandProfile:
            if example in profile.examples or any(
                (e.channel, e.text) == (example.channel, example.text) for e in profile.examples
            ):
                return profile
            if len(profile.examples) >= MAX_EXAMPLES:
                raise InvalidRequest(
                    f"a brand holds at most {MAX_EXAMPLES} examples; remove some first",
                    field="examples",
                )
            return dataclasses.replace(profile, examples=(*profile.examples, example))

        return await self.update(tenant, brand_id, add, expected)

    async def counts(self) -> tuple[int, int]:
        """(brands, examples) over every tenant, for /metrics."""
        query = select(func.count(BrandRow.id), func.coalesce(func.sum(BrandRow.example_count), 0))
        async with self._db.session() as session:
            brands, examples = (await session.execute(query)).one()
        return int(brands), int(examples)


_STALE = "the brand changed since the version in If-Match; read it again"


def _written(row: BrandRow | None, tenant: str, changed: int) -> Brand:
    if row is None or row.tenant != tenant:
        raise NotFound("no such brand", field="brand")
    if not changed:
        raise PreconditionFailed(_STALE)
    return _brand(row)


def _columns(profile: BrandProfile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "voice": profile.voice,
        "tone": profile.tone,
        "audience": profile.audience,
        "preferred_terms": list(profile.preferred_terms),
        "forbidden_terms": list(profile.forbidden_terms),
        "facts": list(profile.facts),
        "examples": [dataclasses.asdict(e) for e in profile.examples],
        "example_count": len(profile.examples),
        "auto_learn": profile.auto_learn,
    }


def _brand(row: BrandRow) -> Brand:
    profile = BrandProfile(
        name=row.name,
        voice=row.voice,
        tone=row.tone,
        audience=row.audience,
        preferred_terms=tuple(row.preferred_terms),
        forbidden_terms=tuple(row.forbidden_terms),
        facts=tuple(row.facts),
        examples=tuple(BrandExample(**e) for e in row.examples),
        auto_learn=row.auto_learn,
    )
    return Brand(row.id, row.version, profile, row.created_at, row.updated_at)
