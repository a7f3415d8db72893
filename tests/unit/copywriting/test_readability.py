"""Reading ease, grade and calls to action, per language."""

from __future__ import annotations

import pytest

from copygen.copywriting.lexicon import is_common_word
from copygen.copywriting.readability import EASE, has_call_to_action, readability
from copygen.copywriting.text import base_forms


def test_plain_text_reads_easier_than_jargon() -> None:
    plain = readability("Charge your phone in the sun. Go further.", "en")
    jargon = readability("Photovoltaic regeneration optimises communication infrastructure.", "en")
    assert plain is not None
    assert jargon is not None
    assert plain.ease > 60 > jargon.ease
    assert plain.grade is not None
    assert jargon.grade is not None
    assert plain.grade < jargon.grade


def test_the_cat_sat_on_the_mat_matches_the_textbook_figure() -> None:
    ease = readability("The cat sat on the mat.", "en")
    assert ease is not None
    assert ease.ease == pytest.approx(116.1, abs=0.1)  # 206.835 - 1.015 * 6 - 84.6 * 1


@pytest.mark.parametrize("language", sorted(EASE))
def test_every_language_with_a_formula_has_an_ease_and_only_english_a_grade(
    language: str,
) -> None:
    ease = readability("Solar energy for every day and every trail.", language)
    assert ease is not None
    assert (ease.grade is not None) is (language == "en")


def test_no_formula_or_no_words_means_none() -> None:
    assert readability("Solar", "ja") is None
    assert readability("!!!", "en") is None


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Shop now and run further!", "en", True),
        ("Sign up today", "en", True),
        ("Solar power for hikers", "en", False),
        ("Jetzt bestellen", "de", True),
        ("Découvrez la gamme", "fr", True),
        ("Compra hoy", "es", True),
    ],
)
def test_calls_to_action(text: str, language: str, expected: bool) -> None:
    assert has_call_to_action(text, language) is expected


def test_the_lexicon_knows_inflected_and_modern_words_but_not_names() -> None:
    for word in ("Hikers", "charging", "Running", "tastiest", "app", "Smartphone", "Journey"):
        assert is_common_word(word), word
    for word in ("Tesla", "Sunfire", "Nike", "EcoCharge"):
        assert not is_common_word(word), word
    assert {"hiker", "hikers"} <= base_forms("Hikers")
