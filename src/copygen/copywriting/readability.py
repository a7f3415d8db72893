"""How easy a text reads, and whether it asks the reader to act. Per language, from tables.

Reading ease is Flesch's formula or the language's own adaptation of it, ``a - b * words per
sentence - c * syllables per word`` (higher is easier; 60-70 is plain English). Syllables
are vowel groups, which is what the formulas' authors counted by hand. A grade (US school
years) exists for English only (Flesch-Kincaid). Copy is short, so the figure is a guide: one
long word moves a six-word headline a lot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from copygen.copywriting.text import split_sentences, words
from copygen.domain import Readability


@dataclass(frozen=True, slots=True)
class EaseFormula:
    base: float
    per_sentence_word: float
    per_word_syllable: float
    vowels: str
    source: str


#: Reading ease per language.
EASE: dict[str, EaseFormula] = {
    "en": EaseFormula(206.835, 1.015, 84.6, "aeiouy", "Flesch (1948)"),
    "de": EaseFormula(180.0, 1.0, 58.5, "aeiouyäöü", "Amstad (1978)"),
    "fr": EaseFormula(207.0, 1.015, 73.6, "aeiouyàâéèêëîïôûùüœæ", "Kandel & Moles (1958)"),
    "es": EaseFormula(206.84, 1.02, 60.0, "aeiouáéíóúü", "Fernández Huerta (1959)"),
    "it": EaseFormula(206.0, 1.0, 65.0, "aeiouàèéìòù", "Franchina & Vacca (1972)"),
    "nl": EaseFormula(206.84, 0.93, 77.0, "aeiouyëïéèáóú", "Douma (1960)"),
}

#: Calls to action per language: a verb (or phrase) that asks the reader to do something.
CALLS_TO_ACTION: dict[str, str] = {
    "en": r"shop|buy|order|get|try|start|join|sign\s+up|subscribe|download|install|book|call"
    r"|visit|discover|explore|learn\s+more|find\s+out|grab|claim|save|register|reserve"
    r"|apply|contact|check\s+out|upgrade|switch|act\s+now|don['’]t\s+miss|tap|click|see",
    "de": r"jetzt|kaufen|kaufe|bestell\w*|hol\w*|entdeck\w*|teste\w*|sicher\w*|melde\w*"
    r"|abonnier\w*|buche\w*|besuch\w*|spar\w*|probier\w*",
    "fr": r"achetez|commandez|découvrez|essayez|profitez|réservez|inscrivez|abonnez"
    r"|téléchargez|visitez|obtenez|économisez|cliquez",
    "es": r"compra|compre|pide|descubre|prueba|reserva|suscríbete|descarga|visita|obtén"
    r"|ahorra|regístrate|haz\s+clic",
}
_CTA = {
    language: re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)
    for language, pattern in CALLS_TO_ACTION.items()
}


def readability(text: str, language: str) -> Readability | None:
    """Reading ease (and, in English, grade) of ``text``; None where the language has no
    formula or the text has no words."""
    formula = EASE.get(_base(language))
    found = words(text)
    if formula is None or not found:
        return None
    sentences = max(1, sum(1 for sentence in split_sentences(text) if words(sentence)))
    per_sentence = len(found) / sentences
    per_word = sum(_syllables(word, formula.vowels) for word in found) / len(found)
    ease = (
        formula.base
        - formula.per_sentence_word * per_sentence
        - formula.per_word_syllable * per_word
    )
    grade = 0.39 * per_sentence + 11.8 * per_word - 15.59 if _base(language) == "en" else None
    return Readability(round(ease, 1), None if grade is None else round(grade, 1))


def has_call_to_action(text: str, language: str) -> bool:
    pattern = _CTA.get(_base(language), _CTA["en"])
    return pattern.search(text) is not None


def _syllables(word: str, vowels: str) -> int:
    lower = word.lower()
    groups = 0
    previous = False
    for ch in lower:
        vowel = ch in vowels
        if vowel and not previous:
            groups += 1
        previous = vowel
    if vowels == EASE["en"].vowels and lower.endswith("e") and not lower.endswith("le"):
        groups -= 1  # a silent final e ("charge", "more")
    return max(1, groups)


def _base(language: str) -> str:
    return language.split("-")[0].lower()
