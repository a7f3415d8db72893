"""The text rules every copy check shares: words, base forms, sentences, domains."""

from __future__ import annotations

import doctest

import pytest

from copygen.copywriting import text
from copygen.copywriting.text import (
    DOMAIN,
    URL,
    base_forms,
    normalise,
    sentence_ends,
    split_sentences,
    tokens,
    words,
)


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(text).failed == 0


# --- words ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("Cheap", "cheap"),
        ("ｃｈｅａｐ", "cheap"),  # full-width letters
        ("ﬁne", "fine"),  # a ligature
        ("Straße", "strasse"),
        ("Don’t", "don't"),  # one apostrophe
        ("e\u0301te\u0301", "été"),  # decomposed accents
    ],
)
def test_words_compare_without_case_width_or_apostrophe_style(
    written: str, normalised: str
) -> None:
    assert normalise(written) == normalise(normalised) == normalised


def test_a_word_is_letters_and_digits_with_apostrophes_inside() -> None:
    found = words("Don't miss the hiker's 24h deal!")
    assert found == ["don't", "miss", "the", "hiker's", "24h", "deal"]


def test_hyphens_underscores_and_symbols_separate_words() -> None:
    assert words("Risk-free, long_lasting: #1 'quoted'") == [
        "risk", "free", "long", "lasting", "1", "quoted",
    ]  # fmt: skip


def test_a_word_keeps_its_combining_marks() -> None:
    assert words("हिन्दी में") == ["हिन्दी", "में"]
    assert tokens("Café Crème") == ["Café", "Crème"]


# --- base forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("battery", "batteries"),
        ("cheap", "cheapest"),
        ("cheap", "cheaper"),
        ("cheap", "cheaply"),
        ("free", "freely"),
        ("run", "running"),
        ("big", "biggest"),
        ("fill", "filling"),
        ("charger", "Chargers"),
        ("charge", "charging"),
        ("hiker", "Hiker's"),
        ("hikers", "hiker's"),
        ("try", "tried"),
        ("easy", "easily"),
        ("use", "using"),
        ("box", "boxes"),
        ("go", "goes"),
        ("ｃｈｅａｐ", "Cheapest"),
    ],
)
def test_inflections_of_one_word_share_a_base_form(a: str, b: str) -> None:
    assert not base_forms(a).isdisjoint(base_forms(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("cheap", "cheapskate"),  # a derivation, not an inflection
        ("free", "freedom"),
        ("hell", "hello"),
        ("app", "apply"),  # "-ly" needs a stem of four letters
        ("ear", "early"),
        ("the", "thing"),  # a stem keeps a vowel
        ("str", "string"),
        ("glas", "glass"),  # "-ss" is not a plural
    ],
)
def test_different_words_do_not_share_a_base_form(a: str, b: str) -> None:
    assert base_forms(a).isdisjoint(base_forms(b))


def test_base_forms_start_with_the_normalised_word() -> None:
    assert base_forms("Hikers") == {"hikers", "hiker"}
    assert base_forms("Solar") == {"solar"}


# --- sentences ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "sentences"),
    [
        ("Charge anywhere. Hike longer!", ["Charge anywhere.", "Hike longer!"]),
        ('She said "Go now." Then she went', ['She said "Go now."', "Then she went"]),
        ("Really?! Yes… Truly.", ["Really?!", "Yes…", "Truly."]),
        ("Shop now\nFree shipping", ["Shop now", "Free shipping"]),
        ("Only $2.50 at sunfire.com today", ["Only $2.50 at sunfire.com today"]),
        ("Wait...what", ["Wait...what"]),  # no space: not a sentence end
        ("  \n\n ", []),
    ],
)
def test_split_sentences(written: str, sentences: list[str]) -> None:
    assert split_sentences(written) == sentences


def test_sentence_ends_fall_after_closing_quotes_and_brackets() -> None:
    written = "Go now.” (Really!) And then the"
    assert [written[:end] for end in sentence_ends(written)] == ["Go now.”", "Go now.” (Really!)"]


# --- domains and links ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "found"),
    [
        ("Visit sunfire.com.", ["sunfire.com"]),
        ("Shop at solar.shop/now or Shop.Example.DE", ["solar.shop/now", "Shop.Example.DE"]),
        ("See sunfire.com.au", ["sunfire.com"]),
        ("A community of 2.5 million", []),
        ("Dots.everywhere.but.no.tld", []),
        ("mail hi@sunfire.io", ["sunfire.io"]),
    ],
)
def test_domains(written: str, found: list[str]) -> None:
    assert DOMAIN.findall(written) == found


def test_a_link_is_a_url_a_www_address_or_a_domain() -> None:
    written = "https://a.b/c?d=1 www.sunfire.example and sunfire.com/x"
    assert URL.findall(written) == ["https://a.b/c?d=1", "www.sunfire.example", "sunfire.com/x"]
