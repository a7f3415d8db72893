from __future__ import annotations

import pytest

from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.postprocess import (
    check_variant,
    clean_text,
    deduplicate,
    keywords_missing,
    postprocess,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"Charge Anywhere, Anytime"', "Charge Anywhere, Anytime"),
        ("Headline: Sun-Powered Phones", "Sun-Powered Phones"),
        ("1. Power From The Sun", "Power From The Sun"),
        ("**Subject line:** Your sunny upgrade", "Your sunny upgrade"),
        ("“Go solar today”<|im_end|>", "Go solar today"),
        ("Go further\nHere is another option", "Go further"),
        ('"Unclosed quote', "Unclosed quote"),
    ],
)
def test_clean_single_line(raw: str, expected: str) -> None:
    assert clean_text(raw, single_line=True, truncated=False) == expected


def test_clean_cuts_a_truncated_trailing_sentence() -> None:
    raw = "Charge in the sun. Hike longer. And then the battery will"
    assert clean_text(raw, single_line=False, truncated=True) == "Charge in the sun. Hike longer."
    assert clean_text(raw, single_line=False, truncated=False) == raw


def test_keywords_match_case_and_inflection() -> None:
    text = "Solar Chargers for hikers who keep running"
    assert keywords_missing(text, ["solar", "charger", "Hiker", "run"]) == ()
    assert keywords_missing(text, ["battery", "solar panel"]) == ("battery", "solar panel")


def test_check_variant_reports_fit_and_score() -> None:
    headline = CHANNELS["google_ads_headline"]
    ok = check_variant("Solar Power In Your Pocket", headline, ["solar"], None)
    long = check_variant("Solar Power In Your Pocket For Every Single Trail", headline, [], None)
    assert ok.fits
    assert ok.limit == 30
    assert ok.chars == 26
    assert not long.fits
    assert ok.score > long.score


def test_forbidden_characters_fail_the_channel() -> None:
    assert not check_variant("shoes/sale", CHANNELS["google_ads_path"], [], None).fits


def test_deduplicate_drops_exact_and_near_duplicates() -> None:
    headline = CHANNELS["google_ads_headline"]
    variants = [
        check_variant(text, headline, [], None)
        for text in (
            "Power From The Sun",
            "power from the sun!",
            "The Sun Power From",
            "Hike Longer, Charge Free",
        )
    ]
    kept = [v.text for v in deduplicate(variants)]
    assert len(kept) == 2
    assert "Hike Longer, Charge Free" in kept


def test_postprocess_drops_empty_and_ranks_best_first() -> None:
    variants = postprocess(
        [
            ("", False),
            ('"A very long headline that will not fit at all"', False),
            ("Go Solar", False),
        ],
        CHANNELS["google_ads_headline"],
        ["solar"],
        None,
    )
    assert [v.text for v in variants] == [
        "Go Solar",
        "A very long headline that will not fit at all",
    ]
