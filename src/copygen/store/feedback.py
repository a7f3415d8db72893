"""The responses feedback refers to (kept COPYGEN_FEEDBACK_TTL_DAYS), and feedback itself
(kept until deleted with its tenant's data: it is what users wrote)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, insert, select

from copygen.errors import NotFound
from copygen.store.brands import now
from copygen.store.database import Database, owned
from copygen.store.tables import FeedbackRow, ResponseRow

Rating = Literal["up", "down"]
#: A prompt as stored: the chat messages, [{"role", "content"}].
Prompt = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    id: str
    brand_id: str | None
    channel: str
    prompt: Prompt
    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Feedback:
    id: int
    copy_id: str
    brand_id: str | None
    channel: str
    prompt: Prompt
    variant_index: int
    variant_text: str
    others: tuple[str, ...]
    rating: Rating
    edited_text: str | None
    note: str | None
    created_at: datetime


class FeedbackRepository:
    def __init__(self, db: Database, ttl_days: int) -> None:
        self._db = db
        self._ttl = timedelta(days=ttl_days)

    async def remember(self, tenant: str, responses: Sequence[StoredResponse]) -> None:
        """One multi-row INSERT (no ORM objects: under load this runs for every response)."""
        stamp = now()
        rows = [
            {"id": r.id, "tenant": tenant, "brand_id": r.brand_id, "channel": r.channel,
             "prompt": [{"role": role, "content": text} for role, text in r.prompt],
             "variants": list(r.variants), "created_at": stamp, "expires_at": stamp + self._ttl}
            for r in responses
        ]  # fmt: skip
        async with self._db.session() as session:
            await session.execute(insert(ResponseRow), rows)

    async def response(self, tenant: str, copy_id: str) -> StoredResponse:
        async with self._db.session() as session:
            row = await session.get(ResponseRow, copy_id)
        if row is None or row.tenant != tenant or row.expires_at < now():
            raise NotFound("no such response (or it is older than the feedback window)",
                           field="copy_id")  # fmt: skip
        prompt = tuple((m["role"], m["content"]) for m in row.prompt)
        return StoredResponse(row.id, row.brand_id, row.channel, prompt, tuple(row.variants))

    async def add(
        self,
        tenant: str,
        response: StoredResponse,
        index: int,
        rating: Rating,
        edited_text: str | None,
        note: str | None,
    ) -> Feedback:
        others = [text for i, text in enumerate(response.variants) if i != index]
        row = FeedbackRow(
            tenant=tenant, copy_id=response.id, brand_id=response.brand_id,
            channel=response.channel,
            prompt=[{"role": role, "content": text} for role, text in response.prompt],
            variant_index=index, variant_text=response.variants[index], others=others,
            rating=rating, edited_text=edited_text, note=note, created_at=now(),
        )  # fmt: skip
        async with self._db.session() as session:
            session.add(row)
            await session.flush()
        return _feedback(row)

    async def get(self, tenant: str, feedback_id: int) -> Feedback:
        async with self._db.session() as session:
            row = await owned(session, FeedbackRow, feedback_id, tenant, "feedback", "feedback_id")
        return _feedback(row)

    async def down_rated(self, brand_id: str, keep: int) -> tuple[tuple[str, ...], int]:
        """The brand's ``keep`` most recent down-rated texts, and the id of the newest."""
        query = (
            select(FeedbackRow.id, FeedbackRow.variant_text)
            .where(FeedbackRow.brand_id == brand_id, FeedbackRow.rating == "down")
            .order_by(FeedbackRow.id.desc())
            .limit(keep)
        )
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
        return tuple(text for _, text in rows), (rows[0][0] if rows else 0)

    async def page(
        self,
        tenant: str,
        brand_id: str | None,
        since: datetime | None,
        after: int,
        limit: int,
    ) -> list[Feedback]:
        """Up to ``limit`` of the tenant's feedback with ids above ``after``, oldest first."""
        query = select(FeedbackRow).where(FeedbackRow.tenant == tenant, FeedbackRow.id > after)
        if brand_id is not None:
            query = query.where(FeedbackRow.brand_id == brand_id)
        if since is not None:
            query = query.where(FeedbackRow.created_at >= since)
        async with self._db.session() as session:
            rows = (await session.scalars(query.order_by(FeedbackRow.id).limit(limit))).all()
        return [_feedback(row) for row in rows]

    async def purge(self) -> int:
        """Forget responses past the feedback window; how many."""
        async with self._db.session() as session:
            result = await session.execute(
                delete(ResponseRow).where(ResponseRow.expires_at < now())
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def counts(self) -> dict[str, int]:
        """Feedback per rating over every tenant, for /metrics."""
        query = select(FeedbackRow.rating, func.count(FeedbackRow.id)).group_by(FeedbackRow.rating)
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
        return {"up": 0, "down": 0, **{str(rating): int(n) for rating, n in rows}}


def _feedback(row: FeedbackRow) -> Feedback:
    return Feedback(
        id=row.id, copy_id=row.copy_id, brand_id=row.brand_id, channel=row.channel,
        prompt=tuple((m["role"], m["content"]) for m in row.prompt),
        variant_index=row.variant_index, variant_text=row.variant_text,
        others=tuple(row.others), rating=row.rating,  # type: ignore[arg-type]
        edited_text=row.edited_text, note=row.note, created_at=row.created_at,
    )  # fmt: skip
