"""The worth checks wired into check_variant and check_completion: strict rejects (or repairs),
flag shows, off adds nothing; the score ranks an unusable variant below a usable one; every
check reads adversarial output in linear time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from copygen.copywriting.channels import CHANNELS, Channel
from copygen.copywriting.grounding import Evidence
from copygen.copywriting.postprocess import Checked, check_completion, check_variant
from copygen.copywriting.ranking import rank
from copygen.copywriting.worth import WORTH_FLAGS, assess
from copygen.domain import CopyBrief, Grounding

KAYAK = CopyBrief(
    product="Tidewater Kayak Tours",
    description="Guided sea-kayak tours along the estuary, run by Tidewater.",
    facts=("2-hour tours at sunrise and sunset", "all gear included"),
    keywords=("kayak",),
)
EVIDENCE = Evidence.of(KAYAK)
HEADLINE = CHANNELS["google_ads_headline"]
DESCRIPTION = CHANNELS["google_ads_description"]

#: One text per worth check that it (and only it, among the worth checks) flags.
EXAMPLES = {
    "off_topic": ("Plan Your Dream Wedding", HEADLINE),
    "misspelt_name": ("Tidal Kayak Tours at Dawn", HEADLINE),
    "fragment": ("Here are 3 kayak headlines", HEADLINE),
    "unsafe": ("Kayak tours and waterboarding adventures", DESCRIPTION),
    "invented_claim": ("Exclusive Kayak Tours", HEADLINE),
    "incoherent": ("Kayak kayak kayak tours", HEADLINE),
    "wrong_language": ("Der Kayak ist für die Tour", HEADLINE),
}


def _check(text: str, policy: Grounding, channel: Channel = HEADLINE) -> Checked:
    return check_variant(text, channel, KAYAK.keywords, None, evidence=EVIDENCE, grounding=policy)


@pytest.mark.parametrize("kind", WORTH_FLAGS)
def test_each_worth_check_has_an_example_it_catches(kind: str) -> None:
    text, channel = EXAMPLES[kind]
    found = {flag.type for flag in assess(text, EVIDENCE, channel.id).flags}
    assert kind in found


@pytest.mark.parametrize("kind", WORTH_FLAGS)
def test_strict_rejects_flag_shows_and_off_ignores_a_worth_failure(kind: str) -> None:
    text, channel = EXAMPLES[kind]
    strict, flagged, off = (_check(text, policy, channel) for policy in ("strict", "flag", "off"))
    assert kind in strict.hard_failures
    assert not strict.acceptable
    assert flagged.acceptable
    assert kind in flagged.soft_failures
    assert kind in {flag.type for flag in flagged.variant.flags}
    assert strict.variant.flags == ()
    assert off.variant.flags == ()
    assert off.perfect or "keywords" in off.soft_failures


def test_a_usable_variant_passes_every_check() -> None:
    policies: tuple[Grounding, ...] = ("strict", "flag")
    for policy in policies:
        checked = _check("Tidewater Kayak Tours at Dawn", policy)
        assert checked.perfect, checked.hard_failures + checked.soft_failures


def test_the_score_ranks_an_unusable_variant_below_a_usable_one() -> None:
    usable = _check("Tidewater Kayak Tours at Dawn", "flag").variant
    for text, channel in EXAMPLES.values():
        if channel is HEADLINE:
            assert _check(text, "flag").variant.score < usable.score, text
    off_topic = _check("Plan Your Dream Wedding", "off").variant
    assert off_topic.score < _check("Tidewater Kayak Tours at Dawn", "off").variant.score
    assert rank([off_topic, usable])[0] == usable


def _complete(
    raw: str, policy: Grounding = "strict", channel: Channel = HEADLINE
) -> Checked | None:
    return check_completion(
        raw, False, channel, KAYAK.keywords, None, evidence=EVIDENCE, grounding=policy
    )


def test_a_misspelt_name_is_repaired_before_checking() -> None:
    checked = _complete("Tidal Kayak Tours at Dawn")
    assert checked is not None
    assert checked.acceptable
    assert checked.variant.text == "Tidewater Kayak Tours at Dawn"


def test_a_leading_label_is_dropped_before_checking() -> None:
    checked = _complete("Google Ads: Tidewater Kayak Tours")
    assert checked is not None
    assert checked.variant.text == "Tidewater Kayak Tours"


def test_an_unsafe_hashtag_or_invented_claim_sentence_is_repaired_away() -> None:
    raw = "Paddle the estuary at sunrise with Tidewater kayak tours. #WaterboardingFun"
    checked = _complete(raw, channel=DESCRIPTION)
    assert checked is not None
    assert checked.acceptable
    assert "Waterboarding" not in checked.variant.text
    raw = "Tidewater kayak tours at sunrise, all gear included. Exclusive offer ends tonight!"
    checked = _complete(raw, channel=DESCRIPTION)
    assert checked is not None
    assert checked.acceptable
    assert checked.variant.text == "Tidewater kayak tours at sunrise, all gear included."


def test_under_off_nothing_is_repaired() -> None:
    checked = _complete("Tidal Kayak Tours at Dawn", policy="off")
    assert checked is not None
    assert checked.variant.text == "Tidal Kayak Tours at Dawn"


def test_a_german_brief_answered_in_english_is_held_to_the_english_claims_too() -> None:
    brief = CopyBrief(product="Wanderrucksack", language="de")
    flags = assess("Wanderrucksack: The best products of the world", Evidence.of(brief), "x")
    assert {(flag.type, flag.text) for flag in flags.flags} >= {
        ("wrong_language", "en"),
        ("risky_claim", "best"),
    }


ADVERSARIAL = {
    "dotted run": "a." * 6000,
    "hyphenated run": "a-" * 6000,
    "words and spaces": "a " * 20000,
    "one long word": "a" * 20000,
    "camel case": "Aa" * 8000,
    "hashtags": "#" + "ab" * 5000,
    "at signs": "a@" * 6000,
    "labels": "Headline: " * 2000,
}


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
@pytest.mark.parametrize(
    "rule",
    [
        lambda text: assess(text, EVIDENCE, "x_post"),
        lambda text: _complete(text, channel=CHANNELS["x_post"]),
    ],
    ids=["assess", "whole check"],
)
def test_every_worth_check_reads_adversarial_output_in_linear_time(
    rule: Callable[[str], object], text: str
) -> None:
    for _ in range(3):  # three tries: a pause of the machine fails no test
        started = time.perf_counter()
        rule(text)
        if time.perf_counter() - started < 1.0:
            return
    pytest.fail("slower than 1 s on every try")


def test_the_api_can_show_every_worth_flag() -> None:
    from copygen.api.schemas import FlagOut

    for kind in WORTH_FLAGS:
        assert FlagOut(type=kind, text="x").type == kind
