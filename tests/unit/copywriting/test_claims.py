"""invented_claim: exclusivity, luxury, superlatives, "unlimited", delivery, urgency and scarcity
the brief's facts do not support."""

from __future__ import annotations

import pytest

from copygen.copywriting.claims import INVENTED_CLAIMS, invented_claims
from copygen.copywriting.grounding import RISKY_CLAIMS, Evidence
from copygen.domain import CopyBrief

BIKES = Evidence.of(
    CopyBrief(
        product="Route 9 Cycles e-bike rental",
        description="Daily e-bike rental on Main Street.",
        facts=("helmet and lock included", "range of about 80 km per charge"),
    )
)


def _claims(text: str, evidence: Evidence = BIKES, languages: tuple[str, ...] = ()) -> list[str]:
    return [flag.text for flag in invented_claims(text, evidence, languages)]


@pytest.mark.parametrize(
    ("text", "claim"),
    [
        ("Exclusive discounts for riders", "Exclusive"),
        ("Exclusive discounts for riders", "discounts"),
        ("E-bikes from the most advanced manufacturer", "most advanced"),
        ("Unlimited riding all summer", "Unlimited"),
        ("Luxury e-bikes on Main Street", "Luxury"),
        ("Premium rides, every day", "Premium"),
        ("A revolutionary way to ride", "revolutionary"),
        ("World-class bikes", "World-class"),
        ("The Ultimate Ride", "Ultimate"),
        ("E-bikes in stock now", "in stock"),
        ("Spare batteries delivered daily", "delivered daily"),
        ("Same-day booking", "Same-day"),
        ("Free shipping on accessories", "Free shipping"),
        ("Limited time: ride more", "Limited time"),
        ("Only 3 left this weekend", "Only 3 left"),
        ("Hurry, book your e-bike", "Hurry"),
        ("Today only: e-bike rental", "Today only"),
        ("Eco-friendly rides on Main Street", "Eco-friendly"),
        ("An amazing ride on Main Street", "amazing"),
        ("Easy e-bike rental", "Easy"),
        ("New e-bikes on Main Street", "New"),
        ("Ride tomorrow on Main Street", "tomorrow"),
    ],
)
def test_a_claim_the_brief_does_not_make_is_invented(text: str, claim: str) -> None:
    assert claim in _claims(text)


def test_a_claim_the_facts_make_is_supported() -> None:
    shop = Evidence.of(
        CopyBrief(product="Tote bag", facts=("free shipping over $50", "exclusive to our shop"))
    )
    assert _claims("Free shipping and an exclusive print", shop) == []


def test_novelty_and_timing_are_supported_when_the_brief_says_so() -> None:
    launch = Evidence.of(
        CopyBrief(product="Route 9 Cycles", facts=("new e-bikes arrive tomorrow", "easy booking"))
    )
    assert _claims("New e-bikes, easy booking, here tomorrow", launch) == []
    assert _claims("Renew your news feed") == []  # whole words only


def test_plain_copy_claims_nothing() -> None:
    assert _claims("Rent an e-bike on Main Street, helmet and lock included.") == []


def test_text_in_another_language_is_read_with_that_languages_table_too() -> None:
    german = Evidence.of(CopyBrief(product="Stadtrad Leipzig", language="de"))
    assert _claims("Exklusive Räder, unbegrenzt fahren", german) == ["Exklusive", "unbegrenzt"]
    assert _claims("Unlimited rides in Leipzig", german) == []
    assert _claims("Unlimited rides in Leipzig", german, ("en",)) == ["Unlimited"]


def test_every_language_of_the_risky_claims_has_an_invented_claims_table() -> None:
    assert set(INVENTED_CLAIMS) == set(RISKY_CLAIMS)
