"""What a brief's rows are steered away from: claim words, figures, handles and addresses the
checks would reject, unless the brief itself makes or writes them."""

from __future__ import annotations

import pytest

from copygen.copywriting.claims import invented_claims
from copygen.copywriting.grounding import Evidence, risky_claims
from copygen.copywriting.rounds import BriefRounds
from copygen.copywriting.steering import CLAIM_WORDS, Steering
from copygen.domain import CopyBrief

LESSONS = CopyBrief(
    product="Online Spanish lessons",
    channel="x_post",
    facts=("25-minute lessons", "first lesson free"),
)


@pytest.mark.parametrize("language", sorted(CLAIM_WORDS))
def test_every_claim_word_is_one_the_checks_reject_on_its_own(language: str) -> None:
    bare = Evidence.of(CopyBrief(product="thing", language=language))
    for word in CLAIM_WORDS[language]:
        assert invented_claims(word, bare) or risky_claims(word, bare), word


def test_claims_the_brief_makes_and_characters_it_writes_stay_allowed() -> None:
    steering = Steering.of(Evidence.of(LESSONS), "strict")
    assert {"ultimate", "unlimited", "complimentary", "www"} <= set(steering.words)
    assert "free" not in steering.words  # "first lesson free"
    assert "@" in steering.chars
    assert "$" in steering.chars
    assert "2" not in steering.chars
    assert "5" not in steering.chars
    assert {"1", "3", "9"} <= set(steering.chars)
    handle = Evidence.of(CopyBrief(product="Ember & Oak", facts=("follow @emberoak",)))
    assert "@" not in Steering.of(handle, "strict").chars


def test_only_strict_grounding_steers_and_every_round_asks_for_it() -> None:
    evidence = Evidence.of(LESSONS)
    assert Steering.of(evidence, "flag") == Steering.of(evidence, "off") == Steering()
    rounds = BriefRounds.new(LESSONS, ())
    for index in (0, 1):
        request = rounds.request(index)
        assert request.avoid_words == rounds.steering.words != ()
        assert request.avoid_chars == rounds.steering.chars != ""
        assert request.again  # a round's slots may come back with the same messages
    assert BriefRounds.new(LESSONS, (), grounding="flag").request(0).avoid_words == ()
