"""off_topic: a variant must share a word with its brief; titles must name the product."""

from __future__ import annotations

import pytest

from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.grounding import Evidence
from copygen.copywriting.subject import ANCHORING, Subject, off_topic, relevance
from copygen.domain import CopyBrief

SKILLET = CopyBrief(
    product="Copperpot cast-iron skillet",
    description="A pre-seasoned cast-iron skillet from Copperpot for home cooks.",
    keywords=("skillet",),
    facts=("oven-safe to 260 °C",),
)
KAYAK = CopyBrief(
    product="Tidewater Kayak Tours",
    description="Guided sea-kayak tours along the estuary, run by Tidewater.",
    audience="weekend visitors",
)
TOTE = CopyBrief(product="Canvas tote bag", channel="google_ads_path")


def _flagged(text: str, brief: CopyBrief, channel: str = "google_ads_headline") -> bool:
    return bool(off_topic(text, Subject.of(brief), channel))


@pytest.mark.parametrize(
    "text",
    ["Powdering Up Your Kitchen", "The Ultimate Survival Kit", "The Ultimate Recipe", "Deals"],
)
def test_a_headline_that_names_nothing_of_the_product_is_off_topic(text: str) -> None:
    assert _flagged(text, SKILLET)


@pytest.mark.parametrize(
    "text", ["Copperpot Skillet, Sear Like a Pro", "Cast-Iron Cooking for Life", "Skillets"]
)
def test_a_headline_with_a_word_of_the_product_name_is_on_topic(text: str) -> None:
    assert not _flagged(text, SKILLET)


def test_a_headline_needs_a_name_anchor_not_only_a_word_of_the_description() -> None:
    # "sea" is in the description ("sea-kayak tours"), not in the product's name
    assert _flagged("Yachts of the Sea!", KAYAK)
    assert not _flagged("Yachts of the Sea!", KAYAK, "google_ads_description")
    assert not _flagged("Boat and Kayaking", KAYAK)


def test_longer_copy_may_be_anchored_by_the_description_facts_or_audience() -> None:
    assert not _flagged("Sear steaks for the home cooks in your life.", SKILLET, "sms")
    assert _flagged("Plan your dream wedding in Tuscany today.", SKILLET, "sms")


def test_a_display_path_is_judged_only_with_two_content_words() -> None:
    assert _flagged("Mortgage Lite", TOTE, "google_ads_path")
    assert not _flagged("Tote-Bags", TOTE, "google_ads_path")
    assert not _flagged("Shop", TOTE, "google_ads_path")
    assert not _flagged("Gifts", TOTE, "google_ads_path")


def test_filler_alone_is_not_judged_and_does_not_anchor() -> None:
    assert not _flagged("Shop Now", SKILLET)
    assert not _flagged("The Best New Way", SKILLET, "sms")  # nothing to judge
    assert _flagged("The Best New Way to Grill", SKILLET, "sms")


def test_words_of_a_compound_anchor_it() -> None:
    backpack = CopyBrief(
        product="Wanderrucksack", description="Ein leichter Rucksack.", language="de"
    )
    assert not _flagged("Der leichte Rucksack für jede Wanderung", backpack)


def test_relevance_is_one_for_a_name_half_for_the_brief_and_zero_for_neither() -> None:
    subject = Subject.of(KAYAK)
    assert relevance("Tidewater at sunrise", subject) == 1.0
    assert relevance("Paddle the estuary", subject) == 0.5
    assert relevance("Plan your dream wedding", subject) == 0.0


def test_every_channel_has_an_anchoring_rule() -> None:
    assert set(ANCHORING) == set(CHANNELS)


def test_the_subject_keeps_proper_names_and_drops_the_common_nouns_of_the_name() -> None:
    subject = Subject.of(KAYAK)
    assert subject.names == ("Tidewater",)  # "kayak", "tours" are in the description
    assert ("Tidewater", "Kayak", "Tours") in subject.phrases
    fit = Subject.of(CopyBrief(product="FitTrack Pulse smart ring"))
    assert fit.names == ("FitTrack", "Pulse")
    assert ("Fit", "Track") in fit.phrases


def test_evidence_carries_the_subject() -> None:
    assert Evidence.of(KAYAK).subject == Subject.of(KAYAK)
