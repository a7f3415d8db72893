"""wrong_language: a small function-word identifier for en, de, fr, es."""

from __future__ import annotations

import pytest

from copygen.copywriting.language import identify, languages_in, wrong_language


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Wanderrucksack: The best products of the world", "en"),
        ("Der leichte Rucksack für jede Wanderung in den Bergen", "de"),
        ("Le sac à dos léger pour toutes vos randonnées", "fr"),
        ("La mochila ligera para todas tus excursiones", "es"),
        ("Sporting Small Car eBikes on Main Street", None),  # "car", "on": no decision
        ("FitTrack Pulse Smart Ring", None),  # too short to tell
    ],
)
def test_identify(text: str, language: str | None) -> None:
    assert identify(text) == language


def test_an_english_answer_to_a_german_brief_is_the_wrong_language() -> None:
    flags = wrong_language("Wanderrucksack: The best products of the world", "de")
    assert [(flag.type, flag.text) for flag in flags] == [("wrong_language", "en")]


def test_a_mixed_text_names_each_language_it_holds() -> None:
    text = "Clases de español con los mejores profesores. Learn with the best tutors in town!"
    assert set(languages_in(text)) == {"es", "en"}
    assert wrong_language(text, "es")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Wanderrucksack", "de"),  # too short to tell: never a guess
        ("Der Rucksack für alle Wege", "de"),
        ("The best backpack for the trail", "en-GB"),
        ("The best backpack for the trail", "ja"),  # no profile for the brief's language
    ],
)
def test_the_right_language_or_too_little_to_tell_is_not_flagged(text: str, language: str) -> None:
    assert wrong_language(text, language) == ()
