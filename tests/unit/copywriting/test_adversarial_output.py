"""Every rule that reads model output takes time linear in its length (security finding #8).

The rules run in the event loop, so one pathological completion must not stall the service.
Each input below made an old rule backtrack quadratically (or cubically): 2 s to minutes
where the rules now take milliseconds (0.2 s at most, on a 2-core machine at load 6). A rule
gets three tries to finish within the bound, so a pause of the machine fails no test, while
a superlinear rule is slow on every try.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from copygen.copywriting.channels import CHANNELS, COUNTERS
from copygen.copywriting.grounding import Evidence, check_grounding, repair
from copygen.copywriting.lexicon import english_words
from copygen.copywriting.postprocess import (
    banned_found,
    check_completion,
    clean_text,
    keywords_missing,
    shorten_to_fit,
)
from copygen.copywriting.readability import has_call_to_action, readability
from copygen.copywriting.text import URL, split_sentences, words
from copygen.domain import CopyBrief, Flag

BOUND_S = 1.0
EVIDENCE = Evidence.of(CopyBrief(product="Solar charger", keywords=("solar",)))

ADVERSARIAL = {
    "dotted run": "a." * 6000,
    "hyphenated run": "a-" * 6000,
    "words and spaces": "a " * 20000,
    "exclamation marks": "!" * 20000,
    "exclamation marks then a letter": "!" * 20000 + "x",
    "one long word": "a" * 20000,
    "apostrophes": "a'" * 6000 + "'",
    "digits and dots": "1." * 6000,
    "a label then spaces": "Headline" + " " * 1200 + "x",
    "a run of spaces": "a" + " " * 12000 + "b",
    "camel case": "Aa" * 8000,
}

RULES: dict[str, Callable[[str], object]] = {
    "grounding": lambda text: check_grounding(text, EVIDENCE),
    "repair": lambda text: repair(text, (Flag("unsupported_entity", "zz"),)),
    **{f"count {name}": counter for name, counter in COUNTERS.items()},
    "clean": lambda text: clean_text(text, single_line=False, truncated=True),
    "shorten": lambda text: shorten_to_fit(text, CHANNELS["google_ads_headline"], 30),
    "readability": lambda text: readability(text, "en"),
    "call to action": lambda text: has_call_to_action(text, "en"),
    "keywords": lambda text: keywords_missing(text, ["solar charger"]),
    "banned": lambda text: banned_found(text, ["cheap", "risk-free"]),
    "words": words,
    "sentences": split_sentences,
    "links": URL.findall,
    "whole check": lambda text: check_completion(
        text, True, CHANNELS["x_post"], ["solar"], None, ["cheap"], evidence=EVIDENCE
    ),
}


@pytest.fixture(autouse=True, scope="module")
def _lexicon_loaded() -> None:
    english_words()  # loaded once per process (~0.2 s): not part of any rule's time


def _finishes_within(bound_s: float, rule: Callable[[str], object], text: str) -> bool:
    for _ in range(3):
        started = time.perf_counter()
        rule(text)
        if time.perf_counter() - started < bound_s:
            return True
    return False


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_every_rule_reads_adversarial_output_in_linear_time(
    rule: Callable[[str], object], text: str
) -> None:
    assert _finishes_within(BOUND_S, rule, text)


def test_grounding_of_the_reported_input_is_immediate() -> None:
    # 4.8 s before the fix (security finding #8)
    assert _finishes_within(0.5, lambda text: check_grounding(text, EVIDENCE), "a." * 4000)
