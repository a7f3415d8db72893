"""Grounding checks, table-driven: what each one flags, and what it must not."""

from __future__ import annotations

import pytest

from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.grounding import (
    Evidence,
    check_grounding,
    repair,
    risky_claims,
    unsupported_entities,
    unsupported_numbers,
)
from copygen.copywriting.postprocess import check_variant
from copygen.copywriting.ranking import select
from copygen.domain import CopyBrief, Flag

CHARGER = CopyBrief(
    product="Solar-powered phone charger",
    audience="hikers and IT managers",
    keywords=("solar",),
    facts=("holds a charge for 24 hours", "ships free over $50", "support 24/7"),
)
BRANDED = CopyBrief(product="SunCharge X200 solar charger", description="Made by Helios™.")


def _texts(flags: tuple[Flag, ...]) -> list[str]:
    return [flag.text for flag in flags]


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Tesla's innovative technology that makes everything possible", ["Tesla"]),
        ("Sunfire solar chargers with protection", ["Sunfire"]),
        ("Gear up. #HikingAdvice #LawnCare #HimalayanBathTech", ["#HimalayanBathTech"]),
        ("Visit sunfire.com or follow @sunfire", ["@sunfire", "sunfire.com"]),
        ("EcoCharge keeps you going", ["EcoCharge"]),
        ("The X300™ charger", ["X300™"]),
        ("Built with NASA tech", ["NASA"]),
        # not names: Title Case common words, sentence-initial capitals, everyday acronyms
        ("Solar Phone Charger, Fuel Your Journey to Adventure", []),
        ("Charge anywhere. Hike longer. Stay connected.", []),
        ("Fast USB charging with GPS-ready power", []),
        ("IT managers love it", []),  # an acronym the audience field contains
        ("Running Low? Charging Made Simple", []),
        ("Don't Let Your Phone Die on the Trail", []),
        ("I'm thrilled: I'll charge mine. I think A Better Trail awaits", []),  # one-letter words
    ],
)
def test_unsupported_entities(text: str, flagged: list[str]) -> None:
    assert _texts(unsupported_entities(text, Evidence.of(CHARGER))) == flagged


def test_a_brand_named_in_the_brief_is_supported() -> None:
    evidence = Evidence.of(BRANDED)
    text = "SunCharge X200: power by Helios™, sun by the SunCharge team"
    assert unsupported_entities(text, evidence) == ()
    assert _texts(unsupported_entities("SunCharge X300", evidence)) == ["X300"]


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("Charge for 24h", []),  # "24h" = the facts' "24 hours"
        ("Free shipping on orders over 50 dollars", []),  # "$50"
        ("Help 24/7", []),  # "24/7" in the facts
        ("Lasts 48 hours", ["48 hours"]),
        ("Now 20% off", ["20%"]),
        ("Only $49.99", ["$49.99"]),
        ("Since 2019", ["2019"]),
        ("1,000 happy hikers", ["1,000"]),
        ("Charge 24 times a day", []),  # a unitless figure in the brief matches any unit
    ],
)
def test_unsupported_numbers(text: str, flagged: list[str]) -> None:
    assert _texts(unsupported_numbers(text, Evidence.of(CHARGER))) == flagged


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("The best charger on the trail", ["best"]),
        ("Guaranteed to charge", ["Guaranteed"]),
        ("Clinically tested power", ["Clinically"]),
        ("Proven to save lives", ["Proven"]),
        ("The #1 charger for hikers", ["#1"]),
        ("Totally risk-free", ["risk-free"]),
        ("100% solar", ["100%"]),
        ("The cheapest power around", ["cheapest"]),
        ("Free shipping over $50", []),  # the facts say free
        ("Hands-free charging", []),  # a compound, not a price
        ("Stay powered on every hike", []),
    ],
)
def test_risky_claims(text: str, flagged: list[str]) -> None:
    assert _texts(risky_claims(text, Evidence.of(CHARGER))) == flagged


def test_claims_follow_the_briefs_language() -> None:
    german = CopyBrief(product="Solarladegerät", language="de")
    assert _texts(risky_claims("Das beste Ladegerät, kostenlos!", Evidence.of(german))) == [
        "beste",
        "kostenlos",
    ]
    # German capitalises nouns: without a German lexicon capitals say nothing
    assert unsupported_entities("Das Ladegerät für Wanderer", Evidence.of(german)) == ()


def test_every_check_runs_in_one_call() -> None:
    flags = check_grounding("Tesla's best charger lasts 48 hours", Evidence.of(CHARGER))
    assert [flag.type for flag in flags] == [
        "unsupported_entity",
        "unsupported_number",
        "risky_claim",
    ]


HEADLINE = CHANNELS["google_ads_headline"]


@pytest.mark.parametrize(
    ("policy", "acceptable", "flags"),
    [("strict", False, []), ("flag", True, ["Tesla"]), ("off", True, [])],
)
def test_the_policy_decides_what_a_flag_does(
    policy: str, acceptable: bool, flags: list[str]
) -> None:
    checked = check_variant(
        "Tesla Power For Hikers", HEADLINE, [], None,
        evidence=Evidence.of(CHARGER), grounding=policy,  # type: ignore[arg-type]
    )  # fmt: skip
    assert checked.acceptable is acceptable
    assert _texts(checked.variant.flags) == flags
    assert checked.perfect is (policy == "off")


def test_strict_never_returns_an_ungrounded_variant_and_flag_ranks_it_lower() -> None:
    evidence = Evidence.of(CHARGER)
    texts = ("Tesla Power For Hikers", "Solar Power For Hikers")
    strict = [
        check_variant(t, HEADLINE, [], None, evidence=evidence, grounding="strict") for t in texts
    ]
    assert [v.text for v in select(strict, 2)] == ["Solar Power For Hikers"]
    flagged = [
        check_variant(t, HEADLINE, [], None, evidence=evidence, grounding="flag") for t in texts
    ]
    chosen = select(flagged, 2)
    assert [v.text for v in chosen] == ["Solar Power For Hikers", "Tesla Power For Hikers"]
    assert chosen[1].score < chosen[0].score


@pytest.mark.parametrize(
    ("text", "repaired"),
    [
        (
            "Charge on every hike with the sun. Rated best by Tesla owners! #SolarLife #TeslaGear",
            "Charge on every hike with the sun. #SolarLife",
        ),
        ("Power for hikers. Visit sunfire.com today", "Power for hikers. Visit today"),
        ("Tesla power", ""),  # nothing of substance left: regenerate instead
    ],
)
def test_repair_drops_what_stands_apart_and_keeps_the_rest(text: str, repaired: str) -> None:
    evidence = Evidence.of(CHARGER)
    assert repair(text, check_grounding(text, evidence)) == repaired
    if repaired:
        assert check_grounding(repaired, evidence) == ()


def test_a_long_post_with_one_ungrounded_sentence_is_repaired_not_rejected() -> None:
    from copygen.copywriting.postprocess import check_completion

    post = CHANNELS["x_post"]
    raw = "Stay charged on the trail with solar power. Loved by 10,000 hikers! #Solar #Hiking"
    checked = check_completion(
        raw, False, post, ["solar"], None, evidence=Evidence.of(CHARGER), grounding="strict"
    )
    assert checked is not None
    assert checked.acceptable
    assert checked.variant.text == "Stay charged on the trail with solar power. #Solar #Hiking"
