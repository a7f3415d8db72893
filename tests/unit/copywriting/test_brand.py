"""A stored brand's part in the copy: the examples a prompt gets, how preferred terms and
down-rated phrasing move a candidate, and voice adherence."""

from __future__ import annotations

import pytest

from copygen.copywriting.brand import (
    AVOID_PENALTY,
    PREFERRED_BONUS,
    PROMPT_EXAMPLES,
    prompt_examples,
    uses_voice,
    voice_adjustment,
)
from copygen.domain import BrandExample, BrandProfile, BrandVoice

ACME = BrandProfile(
    "Acme Solar", preferred_terms=("sunny", "bright", "clean"), forbidden_terms=("cheap",)
)


def _voice(profile: BrandProfile = ACME, avoid: tuple[str, ...] = ()) -> BrandVoice:
    return BrandVoice("br_1", 1, profile, avoid=avoid)


def test_a_prompt_gets_the_channels_newest_examples_then_the_nearest_in_length() -> None:
    examples = (
        BrandExample("sms", "old sms"),
        BrandExample("email_subject", "x" * 200),
        BrandExample("email_subject", "y" * 40),
        BrandExample("sms", "new sms"),
    )
    chosen = prompt_examples(BrandProfile("Acme", examples=examples), "sms")
    assert len(chosen) == PROMPT_EXAMPLES
    assert [e.text for e in chosen[:2]] == ["new sms", "old sms"]
    # sms allows 160 characters: the 200-character example is nearer than the 40-character one
    assert chosen[2].text == "x" * 200


def test_preferred_terms_earn_a_bonus_for_at_most_two() -> None:
    assert voice_adjustment("Plain words only", _voice()) == 0.0
    assert voice_adjustment("A sunny day", _voice()) == PREFERRED_BONUS
    assert voice_adjustment("Sunny, bright and clean", _voice()) == 2 * PREFERRED_BONUS


def test_text_like_down_rated_copy_loses_by_its_overlap() -> None:
    avoided = "Cheap panels for everyone today"
    assert voice_adjustment(avoided, _voice(avoid=(avoided,))) == -AVOID_PENALTY
    # Sharing under half the words is no penalty at all.
    assert voice_adjustment("Panels for hikers", _voice(avoid=(avoided,))) == 0.0


@pytest.mark.parametrize(
    ("text", "adheres"),
    [
        ("A sunny charge anywhere", True),
        ("A charge anywhere", False),  # no preferred term
        ("A sunny and cheap charge", False),  # a forbidden term
    ],
)
def test_voice_adherence_needs_a_preferred_term_and_no_forbidden_one(
    text: str, adheres: bool
) -> None:
    assert uses_voice(text, ACME) is adheres


def test_a_brand_without_preferred_terms_adheres_unless_forbidden() -> None:
    plain = BrandProfile("Plain", forbidden_terms=("cheap",))
    assert uses_voice("Anything goes", plain)
    assert not uses_voice("Cheap thrills", plain)
