"""Feedback that becomes a brand example obeys the example cap every other way in does
(400 characters): a longer edit or variant is not learned, and cannot be promoted. On a real
SQLite file."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from copygen.domain import BrandExample, BrandProfile
from copygen.errors import InvalidRequest
from copygen.service.brands import BrandBook
from copygen.store.database import Database
from copygen.store.feedback import StoredResponse

ACME = BrandProfile(name="Acme", examples=(BrandExample("sms", "Sunny days ahead"),))
LONG = "Sunny " * 67  # 402 characters
SHORT = "Sun all day"


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[BrandBook]:
    book = BrandBook(Database(f"sqlite+aiosqlite:///{tmp_path / 'copygen.db'}"), 30)
    await book.ready()
    yield book
    await book.db.close()


async def _auto_learning(book: BrandBook) -> str:
    brand = await book.brands.create("t", dataclasses.replace(ACME, auto_learn=True))
    response = StoredResponse("copy-1", brand.id, "sms", (), (SHORT, LONG.strip()))
    await book.feedback.remember("t", [response])
    return brand.id


async def _examples(book: BrandBook, brand_id: str) -> list[str]:
    return [e.text for e in (await book.brands.get("t", brand_id)).profile.examples]


async def test_an_edit_over_the_example_cap_is_kept_as_feedback_but_not_learned(
    book: BrandBook,
) -> None:
    brand_id = await _auto_learning(book)
    feedback, learned = await book.rate("t", "copy-1", 0, "up", "x" * 2000, None)
    assert learned is None
    assert feedback.edited_text == "x" * 2000  # the export still has the whole edit
    assert await _examples(book, brand_id) == ["Sunny days ahead"]
    with pytest.raises(InvalidRequest) as refused:
        await book.promote("t", brand_id, feedback.id, None)
    assert refused.value.field == "feedback_id"
    assert await _examples(book, brand_id) == ["Sunny days ahead"]


async def test_a_variant_over_the_example_cap_is_not_learned(book: BrandBook) -> None:
    brand_id = await _auto_learning(book)
    _, learned = await book.rate("t", "copy-1", 1, "up", None, None)
    assert learned is None
    assert await _examples(book, brand_id) == ["Sunny days ahead"]


async def test_text_within_the_cap_is_learned_as_before(book: BrandBook) -> None:
    brand_id = await _auto_learning(book)
    _, learned = await book.rate("t", "copy-1", 0, "up", None, None)
    await book.rate("t", "copy-1", 1, "up", "y" * 400, None)
    assert learned is not None
    assert await _examples(book, brand_id) == ["Sunny days ahead", SHORT, "y" * 400]
