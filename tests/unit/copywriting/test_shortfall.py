"""Honest shortfalls: when fewer candidates pass than the brief asks for, the result holds only
those that pass (the API then says ``complete: false``), never failing text in the empty slots."""

from __future__ import annotations

from copygen.copywriting.rounds import BriefRounds
from copygen.domain import Completion, CopyBrief, Generation

BRIEF = CopyBrief(
    product="Tidewater Kayak Tours",
    description="Guided sea-kayak tours along the estuary, run by Tidewater.",
    keywords=("kayak",),
    variants=3,
    seed=1,
)
COMPLETIONS = (
    "Tidewater Kayak Tours at Dawn",  # usable
    "Plan Your Dream Wedding",  # off topic
    "Here are 3 kayak headlines",  # a preamble, nothing after it
    "Kayak kayak kayak tours",  # repetition
    "Exclusive Kayak Deals",  # an invented claim
)


def _rounds(grounding: str) -> BriefRounds:
    rounds = BriefRounds.new(BRIEF, (), grounding)  # type: ignore[arg-type]
    completions = tuple(Completion(text, 8, "stop") for text in COMPLETIONS)
    rounds.absorb(Generation(prompt_tokens=40, completions=completions))
    return rounds


def test_strict_returns_only_the_variants_that_pass_and_asks_for_more() -> None:
    rounds = _rounds("strict")
    result = rounds.result("fake/model", 1, {}, ())
    assert [v.text for v in result.variants] == ["Tidewater Kayak Tours at Dawn"]
    assert result.requested == 3
    assert len(result.variants) < result.requested
    assert rounds.needed() == 2  # the next round regenerates the two empty slots


def test_flag_fills_with_flagged_variants_ranked_below_the_clean_one() -> None:
    result = _rounds("flag").result("fake/model", 1, {}, ())
    assert len(result.variants) == 3
    assert result.variants[0].text == "Tidewater Kayak Tours at Dawn"
    assert result.variants[0].flags == ()
    assert all(v.flags for v in result.variants[1:])


def test_off_checks_nothing_new() -> None:
    result = _rounds("off").result("fake/model", 1, {}, ())
    assert len(result.variants) == 3
    assert all(v.flags == () for v in result.variants)
