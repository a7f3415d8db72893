"""The brand book: stored brands applied to briefs, the responses feedback refers to, and
feedback that teaches a brand (promoted examples, down-rated phrasing, a preference export).

Responses are remembered in the background (batched every FLUSH_S): a cache hit's fast path
must not wait on a database write. A response's record can so be lost in the last FLUSH_S
before a crash; brands and feedback (what users wrote) are written before the 201.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from copygen.config import Settings
from copygen.copywriting.brand import AVOID_KEPT
from copygen.copywriting.prompts import render_prompt
from copygen.domain import Brand, BrandExample, BrandVoice, CopyBrief, CopyResult
from copygen.errors import CopygenError, InvalidRequest, StoreUnavailable
from copygen.observability import tracing
from copygen.store.brands import BrandRepository
from copygen.store.database import Database
from copygen.store.feedback import Feedback, FeedbackRepository, Rating, StoredResponse

log = logging.getLogger("copygen.brands")

FLUSH_S = 0.2
#: Responses waiting for the database at most (while it is down); beyond, they are counted
#: as remember failures and dropped, so an outage cannot grow the process without bound.
MAX_PENDING = 10_000
#: How often a database that failed its migration at start is tried again.
RETRY_S = 5.0
PURGE_EVERY_S = 3600.0
REFRESH_S = 1.0
#: The longest text a brand example holds, however it arrives (the brand routes, learned or
#: promoted feedback, whose edits may run to 2,000): examples go into every brief's prompt.
MAX_EXAMPLE_CHARS = 400


class BrandBook:
    def __init__(self, db: Database, feedback_ttl_days: int) -> None:
        self.db = db
        self.brands = BrandRepository(db)
        self.feedback = FeedbackRepository(db, feedback_ttl_days)
        self.migrated = False
        #: Counts for /metrics, refreshed after writes: brands, examples, feedback per rating.
        self.figures: dict[str, int] = {"brands": 0, "examples": 0, "up": 0, "down": 0}
        self.remember_failures = 0
        #: (tenant, response id) → the brief and result, until the next write.
        self._pending: dict[tuple[str, str], tuple[CopyBrief, CopyResult]] = {}
        self._failed_at = -RETRY_S
        self._stale = False
        self._refreshed_at = -REFRESH_S
        self._migrating = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BrandBook:
        return cls(Database.from_settings(settings), settings.feedback_ttl_days)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate (a database that is down now is tried again on use) and start the
        background writer."""
        if self.db.sqlite:
            log.info("brands and feedback in SQLite (one replica only; COPYGEN_DATABASE_URL "
                     "names a PostgreSQL database that several share)")  # fmt: skip
        with contextlib.suppress(StoreUnavailable):
            await self.ready()
        self._task = asyncio.create_task(self._background(), name="copygen-brand-book")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._flush()
        await self.db.close()

    async def ready(self) -> None:
        """Raise StoreUnavailable unless the database is migrated. The first caller runs the
        migration, concurrent ones wait for it; after a failure it is tried again on use,
        at most every RETRY_S."""
        if self.migrated:
            return
        async with self._migrating:
            if self.migrated:
                return
            if time.monotonic() - self._failed_at < RETRY_S:
                raise StoreUnavailable("the database is unavailable; retry shortly")
            try:
                await self.db.migrate()
            except StoreUnavailable:
                self._failed_at = time.monotonic()
                raise
            self.migrated = True
        with contextlib.suppress(StoreUnavailable):
            await self.feedback.purge()
            await self.refresh_figures()

    async def _background(self) -> None:
        purged = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH_S)
            if not self.migrated:  # down at start: keep trying (at most every RETRY_S)
                with contextlib.suppress(StoreUnavailable):
                    await self.ready()
            await self._flush()
            if self._stale and time.monotonic() - self._refreshed_at >= REFRESH_S:
                with contextlib.suppress(StoreUnavailable):
                    await self.refresh_figures()
            if time.monotonic() - purged > PURGE_EVERY_S:
                purged = time.monotonic()
                with contextlib.suppress(StoreUnavailable):
                    await self.feedback.purge()

    def status(self) -> dict[str, Any]:
        """The /health section: which database (never its URL) and whether it is usable."""
        return {
            "database": self.db.kind,
            "migrated": self.migrated,
            "responses_pending": len(self._pending),
            "remember_failures": self.remember_failures,
        }

    def changed(self) -> None:
        """A write happened: /metrics' counts are read again in the background (counting is a
        scan of the tables, so not on the request that wrote, and at most every REFRESH_S)."""
        self._stale = True

    async def refresh_figures(self) -> None:
        self._stale, self._refreshed_at = False, time.monotonic()
        brands, examples = await self.brands.counts()
        self.figures = {"brands": brands, "examples": examples, **await self.feedback.counts()}

    # --- brands in briefs ---------------------------------------------------------------

    async def voice(self, tenant: str, brand_id: str) -> BrandVoice:
        """What a brief takes from the tenant's brand ``brand_id`` (NotFound otherwise)."""
        with tracing.span("store.brand_voice"):
            await self.ready()
            brand = await self.brands.get(tenant, brand_id)
            avoid, learned = await self.feedback.down_rated(brand_id, AVOID_KEPT)
        return BrandVoice(brand.id, brand.version, brand.profile, avoid, learned)

    def remember(
        self, tenant: str, briefs: Sequence[CopyBrief], results: Sequence[CopyResult]
    ) -> None:
        """Keep each response's variants (and the prompt) so feedback can name them. Only
        the pair is queued here (a cache hit's fast path calls this); the prompt is rendered
        when the queue is written."""
        for brief, result in zip(briefs, results, strict=True):
            if len(self._pending) >= MAX_PENDING:  # the database is down: bounded, counted
                self.remember_failures += 1
                continue
            self._pending[(tenant, result.id)] = (brief, result)

    def _waiting(self, tenant: str, copy_id: str) -> StoredResponse | None:
        queued = self._pending.get((tenant, copy_id))
        return None if queued is None else _stored(*queued)

    async def _flush(self) -> None:
        if not self._pending or not self.migrated:
            return
        pending, self._pending = self._pending, {}
        tenants: dict[str, list[StoredResponse]] = {}
        for (tenant, _), queued in pending.items():
            tenants.setdefault(tenant, []).append(_stored(*queued))
        for tenant, responses in tenants.items():
            try:
                await self.feedback.remember(tenant, responses)
            except CopygenError:
                self.remember_failures += len(responses)

    # --- feedback -----------------------------------------------------------------------

    async def rate(
        self,
        tenant: str,
        copy_id: str,
        variant: int | str,
        rating: Rating,
        edited_text: str | None,
        note: str | None,
    ) -> tuple[Feedback, Brand | None]:
        """Record feedback on one variant of a response; an up-rated (or edited) variant of a
        brand with ``auto_learn`` becomes one of its examples (the brand, when it did)."""
        await self.ready()
        response = self._waiting(tenant, copy_id) or await self.feedback.response(tenant, copy_id)
        index = _variant_index(response.variants, variant)
        feedback = await self.feedback.add(tenant, response, index, rating, edited_text, note)
        learned = None
        if rating == "up" and response.brand_id is not None:
            with contextlib.suppress(CopygenError):
                brand = await self.brands.get(tenant, response.brand_id)
                example = _example(feedback)
                if brand.profile.auto_learn and example is not None:
                    learned = await self.brands.add_example(tenant, brand.id, example)
        self.changed()
        return feedback, learned

    async def promote(
        self, tenant: str, brand_id: str, feedback_id: int, expected: int | None
    ) -> Brand:
        """Make the text of feedback ``feedback_id`` (its edit, else the variant) an example."""
        await self.ready()
        feedback = await self.feedback.get(tenant, feedback_id)
        example = _example(feedback)
        if example is None:
            raise InvalidRequest(
                f"an example holds at most {MAX_EXAMPLE_CHARS} characters; this feedback's "
                "text is longer",
                field="feedback_id",
            )
        brand = await self.brands.add_example(tenant, brand_id, example, expected)
        self.changed()
        return brand

    async def export(
        self,
        tenant: str,
        brand_id: str | None,
        since: datetime | None,
        after: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Preference pairs (DPO: prompt, chosen, rejected) from the tenant's feedback, and
        the cursor of the next page (None on the last)."""
        await self.ready()
        page = await self.feedback.page(tenant, brand_id, since, after, limit)
        pairs = [pair for feedback in page if (pair := preference_pair(feedback))]
        cursor = page[-1].id if len(page) == limit else None
        return pairs, cursor


def preference_pair(feedback: Feedback) -> dict[str, Any] | None:
    """One DPO record from one rating, or None when the rating gives no pair:

    * an edit: the edit is chosen over the variant it rewrote;
    * up: the variant is chosen over the response's first other variant;
    * down: the response's first other variant is chosen over it.
    """
    text, others = feedback.variant_text, feedback.others
    if feedback.edited_text and feedback.edited_text != text:
        chosen, rejected = feedback.edited_text, text
    elif not others:
        return None
    elif feedback.rating == "up":
        chosen, rejected = text, others[0]
    else:
        chosen, rejected = others[0], text
    return {
        "prompt": [{"role": role, "content": content} for role, content in feedback.prompt],
        "chosen": chosen,
        "rejected": rejected,
        "feedback_id": feedback.id,
        "copy_id": feedback.copy_id,
        "brand": feedback.brand_id,
    }


def _stored(brief: CopyBrief, result: CopyResult) -> StoredResponse:
    prompt = tuple((m.role, m.content) for m in render_prompt(brief))
    brand_id = brief.brand.id if brief.brand else None
    texts = tuple(v.text for v in result.variants)
    return StoredResponse(result.id, brand_id, result.channel, prompt, texts)


def _variant_index(variants: Sequence[str], variant: int | str) -> int:
    if isinstance(variant, int):
        if not 0 <= variant < len(variants):
            raise InvalidRequest("the response has no variant at that index", field="variant")
        return variant
    if variant not in variants:
        raise InvalidRequest("the response has no variant with that text", field="variant")
    return variants.index(variant)


def _example(feedback: Feedback) -> BrandExample | None:
    """The example feedback makes (its edit, else the variant); None when it is too long."""
    text = feedback.edited_text or feedback.variant_text
    if len(text) > MAX_EXAMPLE_CHARS:
        return None
    return BrandExample(feedback.channel, text, "feedback")


def with_brand(brief: CopyBrief, voice: BrandVoice, explicit: set[str]) -> CopyBrief:
    """``brief`` with its brand; the brand's tone and audience apply where the request did
    not set its own (``explicit``: the fields it sent)."""
    changes: dict[str, Any] = {"brand": voice}
    profile = voice.profile
    if profile.tone and "tone" not in explicit:
        changes["tone"] = profile.tone
    if profile.audience and "audience" not in explicit:
        changes["audience"] = profile.audience
    return dataclasses.replace(brief, **changes)
