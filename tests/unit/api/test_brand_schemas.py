"""The brand and feedback routes' bodies: strict fields, no NUL anywhere (PostgreSQL refuses
it), a PATCH that changes only what it sends, and If-Match versions."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from copygen.api.brand_schemas import (
    BrandIn,
    BrandOut,
    BrandPatch,
    FeedbackIn,
    brand_etag,
    parse_if_match,
)
from copygen.domain import Brand, BrandExample


def test_a_brand_body_becomes_a_profile_with_tuples_and_examples() -> None:
    body = BrandIn.model_validate({
        "name": " Acme ", "tone": "Friendly", "preferred_terms": [" sunny "],
        "examples": [{"channel": "SMS", "text": "Sunny days"}],
    })  # fmt: skip
    profile = body.to_profile()
    assert (profile.name, profile.tone, profile.preferred_terms) == ("Acme", "friendly", ("sunny",))
    assert profile.examples == (BrandExample("sms", "Sunny days", "manual"),)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Acme\x00"},
        {"name": "Acme", "facts": ["ok", "bad\x00"]},
        {"name": "Acme", "examples": [{"channel": "sms", "text": "\x00"}]},
        {"name": "Acme", "colour": "red"},
        {"name": "Acme", "examples": [{"channel": "fax", "text": "x"}]},
        {"name": "Acme", "forbidden_terms": ["x" * 61]},
    ],
    ids=["nul", "nul-in-list", "nul-in-example", "unknown-field", "unknown-channel", "long"],
)
def test_bodies_a_store_could_not_keep_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BrandIn.model_validate(body)


def test_a_patch_changes_only_the_fields_it_sends() -> None:
    patch = BrandPatch.model_validate({"voice": "plain", "forbidden_terms": ["cheap"]})
    assert patch.changes() == {"voice": "plain", "forbidden_terms": ("cheap",)}
    with pytest.raises(ValidationError):
        BrandPatch.model_validate({"name": ""})  # sent, so it must say something


@pytest.mark.parametrize(
    ("header", "version"),
    [(None, None), ("*", None), ('"3"', 3), ('W/"3"', 3), ('"3", "4"', 3), ('"x"', -1),
     ('"' + "9" * 12 + '"', -1)],
)  # fmt: skip
def test_if_match_names_a_version_none_or_one_that_cannot_exist(
    header: str | None, version: int | None
) -> None:
    assert parse_if_match(header) == version


def test_the_etag_is_the_brands_version_and_times_come_back_in_utc() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5)
    brand = Brand("br_1", 7, BrandIn(name="Acme").to_profile(), moment, moment)
    assert brand_etag(brand) == '"7"'
    assert parse_if_match(brand_etag(brand)) == 7
    out = BrandOut.of(brand)
    assert out.created_at.utcoffset() is not None
    assert out.created_at.isoformat().endswith("+00:00")


def test_feedback_names_a_variant_by_index_or_by_text() -> None:
    by_index = FeedbackIn.model_validate({"copy_id": "c1", "variant": 2, "rating": "up"})
    by_text = FeedbackIn.model_validate({"copy_id": "c1", "variant": "Go solar", "rating": "down"})
    assert (by_index.variant, by_text.variant) == (2, "Go solar")
    with pytest.raises(ValidationError):
        FeedbackIn.model_validate({"copy_id": "c1", "variant": 0, "rating": "meh"})
