"""incoherent: repetition, non-words and no grammar; the coherence score falls with each."""

from __future__ import annotations

import pytest

from copygen.copywriting.coherence import incoherence, measure
from copygen.copywriting.grounding import Evidence
from copygen.domain import CopyBrief

TOTE = Evidence.of(CopyBrief(product="Canvas tote bag", keywords=("tote",)))
BREW = Evidence.of(CopyBrief(product="Cold brew coffee subscription"))


def _pieces(text: str, evidence: Evidence = TOTE, channel: str = "") -> list[str]:
    return [flag.text for flag in incoherence(text, evidence, channel)]


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("Canvas tote tote tote bags", "tote tote"),
        ("Sunday Roast Supper Club Wedding Weddings", "wedding weddings"),
        ("Beware the sting. Sturdy straps. Beware the sting.", "beware the sting"),
        ("No more: fees. No more: queues. No more: waiting.", "no more"),
        ("Rebate: give away. Paid: no more. Elimination: no more. Loyalty: no more.", "no more"),
        ("Fresh cold brew, fresh cold brew weekly. Fresh cold brew!", "fresh cold"),
    ],
)
def test_repetition_is_incoherent(text: str, piece: str) -> None:
    assert piece in _pieces(text, BREW if "brew" in text else TOTE)


def test_non_words_make_word_salad() -> None:
    text = "Sourdough Savorables tocacon Rekindlable"
    assert _pieces(text) == [text]


@pytest.mark.parametrize(
    ("language", "product", "salad", "copy"),
    [
        (
            "de", "KlarWerk Fensterreinigung",
            "Fenster wurde ein neue Schnapschleif für den Vorabrik in Koln.",
            "Saubere Fenster ohne Streifen: KlarWerk putzt für Sie. Jetzt Termin buchen!",
        ),
        (
            "es", "Aceite de oliva Casa Olivar",
            "Aceite de ochoja del marimbolo.",
            "Aceite de oliva virgen extra de Casa Olivar, directo del campo a su mesa.",
        ),
        (
            "fr", "Maison Verveine savon",
            "Savon agraïs de la maison vourille des seuls bons amis.",
            "Un savon doux à l'huile d'olive, fabriqué en Provence par Maison Verveine.",
        ),
    ],
)  # fmt: skip
def test_non_words_make_word_salad_in_german_french_and_spanish(
    language: str, product: str, salad: str, copy: str
) -> None:
    brief = Evidence.of(CopyBrief(product=product, language=language))
    assert _pieces(salad, brief) == [salad]
    assert _pieces(copy, brief) == []
    assert measure(copy, brief).non_word_share == 0.0


def test_a_long_text_without_function_words_has_no_grammar() -> None:
    text = (
        "Pillow, Bite, Air-Drying Clay, Gentle, Kids, Parents, Children, Skin Care, Brands, "
        "Companies, Clay, Soft Colours"
    )
    assert _pieces(text) == [text]
    assert _pieces(text, channel="amazon_title") == []  # a list is how Amazon titles read


@pytest.mark.parametrize(
    "text",
    [
        "Canvas tote bags for every day",
        "Smart Light, Smart Lamp",
        "Our tote carries your laptop. The tote folds flat. Take the tote anywhere.",
        "The Canvas Tote Bag team loves the Canvas Tote Bag you carry every day, and so will you.",
    ],
)
def test_plain_copy_and_the_brands_own_name_again_are_coherent(text: str) -> None:
    assert _pieces(text) == []


def test_the_brief_s_words_are_no_non_words() -> None:
    brief = Evidence.of(
        CopyBrief(product="Snapledger receipts", description="Scan with Snapledger")
    )
    assert measure("Snapledger scans receipts", brief).non_word_share == 0.0


def test_the_score_falls_with_repetition_and_non_words() -> None:
    clean = measure("Canvas tote bags for every day", TOTE).score
    repeated = measure("Canvas tote tote tote bags", TOTE).score
    salad = measure("Canvas tote tocacon savorables", TOTE).score
    assert clean == 1.0
    assert repeated < clean
    assert salad < clean


def test_non_words_are_measured_only_in_a_language_with_a_word_list() -> None:
    german = Evidence.of(CopyBrief(product="Stadtrad", language="de"))
    assert measure("Leihfahrräder überall in Leipzig", german).non_word_share == 0.0
    italian = Evidence.of(CopyBrief(product="Stadtrad", language="it"))
    assert measure("Biciclette ovunque a Lipsia", italian).non_word_share is None
