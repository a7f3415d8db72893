"""fragment: labels, preambles, numbering, placeholders, contacts the brief lacks, and text that
stops mid-thought; drop_preamble removes a leading label or preamble."""

from __future__ import annotations

import pytest

from copygen.copywriting.fragments import drop_preamble, fragments
from copygen.copywriting.grounding import Evidence
from copygen.domain import CopyBrief

BREW = Evidence.of(
    CopyBrief(
        product="Brewline cold brew subscription",
        description="Cold brew delivered every week. Questions: hello@brewline.com",
    )
)


def _pieces(text: str, evidence: Evidence = BREW) -> list[str]:
    return [flag.text for flag in fragments(text, evidence)]


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("Google Ads: Fresh cold brew every week", "Google Ads:"),
        ("Headline 2 - Fresh cold brew", "Headline 2 -"),
        ("Option 2 - Fresh cold brew", "Option 2 -"),
        ("Premise: your week starts with cold brew", "Premise:"),
        ("Here are three headlines for you", "Here are three"),
        ("Sure! Cold brew, weekly.", "Sure!"),
        ("I'm ready to help you craft your next email.", "I'm ready to help"),
        ("How can I help you?", "How can I help"),
        ("#1: Fresh cold brew", "#1:"),
        ("Fresh [Brand] cold brew", "[Brand]"),
        ("Up to $X off cold brew", "$X"),
        ("Order at brewline.shop today", "brewline.shop"),
        ("Write to orders@brewline.com", "orders@brewline.com"),
        ("Follow @brewline for drops", "@brewline"),
        ("Call 555 123 4567 to order", "555 123 4567"),
    ],
)
def test_scaffolding_around_the_copy_is_a_fragment(text: str, piece: str) -> None:
    assert piece in _pieces(text)


@pytest.mark.parametrize(
    "text",
    [
        "The cold brew that",
        "Fresh cold brew for",
        "Start every week with the",
        "Cold brew, delivered weekly,",
        "Cold brew delivered weekly. From fresh beans to your",
    ],
)
def test_a_text_that_stops_mid_thought_is_a_fragment(text: str) -> None:
    assert _pieces(text)


@pytest.mark.parametrize(
    "text",
    [
        "Brewline: cold brew, every week",  # the product's name before a colon is copy
        "Fresh cold brew. Learn more",
        "Cold brew made for you",
        "Questions? Write to hello@brewline.com",  # the brief gave this address
        "Sign up and log in",
        "Here's how it works: one box a week.",
        "What's your morning ritual?",
        "Open 7am to 1pm",
    ],
)
def test_copy_is_not_a_fragment(text: str) -> None:
    assert _pieces(text) == []


def test_an_unfinished_text_is_flagged_by_its_last_sentence_so_repair_can_drop_it() -> None:
    text = "Cold brew, every week. Ready in the fridge for the"
    assert _pieces(text) == ["Ready in the fridge for the"]


def test_the_other_languages_have_their_own_unfinished_endings() -> None:
    german = Evidence.of(CopyBrief(product="Kaltgetränk", language="de"))
    assert _pieces("Frischer Kaffee für die", german)
    assert not _pieces("Frischer Kaffee für dich", german)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Google Ads: Fresh cold brew", "Fresh cold brew"),
        ("Sure! Here are three headlines: Fresh cold brew", "Fresh cold brew"),
        ("#1: Fresh cold brew", "Fresh cold brew"),
        ("Option 2 - Fresh cold brew", "Fresh cold brew"),
        ("Here are three headlines:", "Here are three headlines:"),  # nothing would be left
        ("Brewline: cold brew, every week", "Brewline: cold brew, every week"),
    ],
)
def test_drop_preamble_removes_a_leading_label_or_preamble(text: str, kept: str) -> None:
    assert drop_preamble(text) == kept
