"""An ad platform's asset set checked as the platform checks it: Google's responsive search ad
rules (limits by Google's counting, distinct assets, keyword and call-to-action headlines, no
headline repeating a display path), Meta's soft limits, and the suggested pin."""

from __future__ import annotations

from copygen.copywriting.assets import (
    RSA_MIN_KEYWORD_HEADLINES,
    meta_checks,
    near_duplicates,
    rsa_checks,
    suggest_pins,
)

HEADLINES = [
    "Solar Chargers for Hikers",
    "Buy a Solar Charger Today",
    "Solar Power in Your Pack",
    "Charge Anywhere the Sun Is",
]
DESCRIPTIONS = [
    "Fold it, clip it to your pack and charge two phones before lunch.",
    "Waterproof panels, a year of warranty and free returns on every order.",
]


def test_a_good_set_passes_every_rule() -> None:
    checks = rsa_checks(HEADLINES, DESCRIPTIONS, ["solar"], ["Solar", "Chargers"])
    assert checks.passed, checks.failures
    assert checks.keyword_headlines == RSA_MIN_KEYWORD_HEADLINES
    assert checks.cta_headlines == 1  # "Buy ..."
    assert (checks.within_limits, checks.distinct, checks.path_repeats) == (True, True, 0)


def test_each_unmet_rule_is_named() -> None:
    headlines = [
        "Solar Chargers for Hikers",
        "Solar chargers for hikers!",  # a near duplicate of the first
        "Chargers",  # repeats a display path verbatim
        "A Headline Far Too Long for Google Ads",  # 38 > 30
    ]
    checks = rsa_checks(headlines, DESCRIPTIONS, ["waterproof"], ["chargers"])
    assert set(checks.failures) == {
        "over_limit", "near_duplicates", "keyword_headlines", "cta_headline", "path_repeated",
    }  # fmt: skip
    assert not checks.passed
    assert checks.path_repeats == 1


def test_wide_characters_count_twice_against_googles_limits() -> None:
    wide = "太阳能充电器太阳能充电器太阳能充"  # 16 characters, 32 by Google's count
    assert not rsa_checks([wide], [], [], []).within_limits
    assert rsa_checks([wide[:15]], [], [], []).within_limits
    assert not rsa_checks(HEADLINES, DESCRIPTIONS, [], ["x" * 16, ""]).within_limits


def test_without_keywords_the_keyword_rule_does_not_apply() -> None:
    checks = rsa_checks(HEADLINES, DESCRIPTIONS, [], [])
    assert "keyword_headlines" not in checks.failures
    assert checks.keyword_headlines == 0


def test_the_call_to_action_is_read_in_the_sets_language() -> None:
    headlines = ["Jetzt Solarlader sichern", "Solarlader für Wanderer"]
    assert rsa_checks(headlines, [], [], [], "de").cta_headlines == 1
    assert rsa_checks(headlines, [], [], [], "en").cta_headlines == 0


def test_near_duplicates_counts_pairs() -> None:
    assert near_duplicates(["Go solar now", "go SOLAR now!", "Go solar now.", "Other"]) == 3
    assert near_duplicates(HEADLINES) == 0


def test_meta_limits_are_soft_and_only_limits_and_duplicates_fail() -> None:
    long_headline = "A headline that runs well past Meta's forty characters"
    checks = meta_checks(["Primary text"], [long_headline, "Short"], [])
    assert checks.failures == ("over_limit",)
    assert (checks.keyword_headlines, checks.cta_headlines, checks.path_repeats) == (0, 0, 0)
    assert meta_checks(["Same words", "same words"], ["One"], ["Two"]).failures == (
        "near_duplicates",
    )


def test_the_brand_headline_is_pinned_first_else_a_keyword_headline() -> None:
    headlines = ["Charge Anywhere", "Solar Power Packs", "Acme Chargers"]
    assert suggest_pins(headlines, ["solar"], "Acme") == [None, None, 1]
    assert suggest_pins(headlines, ["solar"], "Nobody") == [None, 1, None]
    assert suggest_pins(headlines, ["solar"], None) == [None, 1, None]
    assert suggest_pins(headlines, [], None) == [None, None, None]  # nothing to pin: unpinned
