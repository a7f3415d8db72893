"""unsafe: brand-unsafe words per language, inside hashtags too, unless the brief uses them."""

from __future__ import annotations

import pytest

from copygen.copywriting.grounding import Evidence
from copygen.copywriting.harm import HARM, unsafe_words
from copygen.domain import CopyBrief

KAYAK = Evidence.of(CopyBrief(product="Tidewater Kayak Tours"))
DOGS = Evidence.of(CopyBrief(product="Pawpath dog walking", audience="busy dog owners"))
CHARGER = Evidence.of(CopyBrief(product="Solar-powered phone charger"))
KNIVES = Evidence.of(CopyBrief(product="Edgecraft chef's knife", description="A forged knife."))


def _found(text: str, evidence: Evidence, languages: tuple[str, ...] = ()) -> list[str]:
    return [flag.text for flag in unsafe_words(text, evidence, languages)]


@pytest.mark.parametrize(
    ("text", "evidence", "found"),
    [
        ("Book our waterboarding adventures today", KAYAK, ["waterboarding"]),
        ("Happy walks, happy dogs #DogsCruelty", DOGS, ["#DogsCruelty"]),
        ("Happy walks #dogscruelty", DOGS, ["#dogscruelty"]),  # joined: split by the lexicon
        (
            "#SunKilledHiker: don't let a flat battery be the death of you.",
            CHARGER,
            ["#SunKilledHiker", "death"],
        ),
        ("Paddle like you stole a gun", KAYAK, ["gun"]),
        ("Sexy sunsets on the water", KAYAK, ["Sexy"]),
        ("Tours so good they're cocaine", KAYAK, ["cocaine"]),
    ],
)
def test_brand_unsafe_words_are_flagged(text: str, evidence: Evidence, found: list[str]) -> None:
    assert _found(text, evidence) == found


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("Don't let your phone die on the trail", CHARGER),
        ("Never a dead battery again", CHARGER),
        ("#SkilledWorkers #therapist", CHARGER),  # "kill", "rapist" only inside real words
        ("Cruelty-free, drug-free fun", DOGS),  # negated: a claim, not harm
        ("The sharpest knife in your kitchen", KNIVES),  # the brief uses the word
        ("Killer views at sunrise", KAYAK),
    ],
)
def test_ordinary_copy_and_words_the_brief_uses_are_safe(text: str, evidence: Evidence) -> None:
    assert _found(text, evidence) == []


def test_each_language_has_its_own_lexicon() -> None:
    german = Evidence.of(CopyBrief(product="Stadtrad Leipzig", language="de"))
    assert _found("Fahrrad mit Waffe und Drogen", german) == ["Waffe", "Drogen"]
    assert _found("Mit dem Rad zur Arbeit", german) == []
    # English text for a German brief is read with the English lexicon too
    assert _found("Bikes to die for, guns included", german, ("en",)) == ["guns"]
    assert set(HARM) == {"en", "de", "fr", "es"}
    assert _found(
        "Un couteau dans chaque boîte", Evidence.of(CopyBrief(product="x", language="fr"))
    )


def test_slurs_match_as_written_so_innocent_words_that_inflect_to_them_pass() -> None:
    assert _found("Artisanal spices from every corner", CHARGER) == []
    assert _found("No spics", CHARGER) == ["spics"]
