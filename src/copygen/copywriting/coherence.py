"""Word salad and repetition: the ``incoherent`` check, and the coherence part of the score.

What a small model writes when it loses the thread is recognisable without understanding it:

* **repetition**: a word twice in a row ("Canvas tote tote tote bags", "Wedding Weddings"), a
  pair of words again and again, the same sentence twice, sentences that all start or end
  alike ("no more." on every line);
* **non-words**: a high share of words no dictionary knows ("tocacon", "Savorables",
  "Rekindlable", "Schnapschleif", "marimbolo"), in English, German, French and Spanish
  (copywriting/lexicon.py), the brief's own words aside;
* **no grammar**: a long text with almost no function words is a heap of nouns.

Thresholds are calibrated on the gold set (docs/quality.md, "Gold set").
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from copygen.copywriting.grounding import Evidence
from copygen.copywriting.language import FUNCTION_WORDS
from copygen.copywriting.lexicon import KNOWN_WORD_LANGUAGES, is_known_word
from copygen.copywriting.subject import forms
from copygen.copywriting.text import split_sentences, words
from copygen.domain import Flag

#: lexicon.is_known_word, remembered: every candidate asks about the same words again.
_known = functools.lru_cache(maxsize=1 << 14)(is_known_word)
#: A text is salad when at least this share of its words (and two of them) are non-words.
MAX_NON_WORD_SHARE = 0.2
#: A text of at least LONG_TEXT_WORDS words with fewer function words than this share has
#: no grammar to speak of.
MIN_FUNCTION_SHARE = 0.12
LONG_TEXT_WORDS = 14
#: Channels whose copy is a list of attributes by convention ("Lightweight Trail Running
#: Shoes, Grippy Outsole, Breathable Mesh"): few function words is no fault there.
LISTS = frozenset({"amazon_title"})
#: A pair of content words (not the brief's name) repeated this often is stuffing; long
#: texts may repeat a pair once more.
REPEATED_PAIR = 2
LONG_REPEATED_PAIR = 3
LONG_PAIR_WORDS = 60
#: Sentences starting (or ending) with the same two words this often are a template.
REPEATED_EDGES = 3
#: A text this short that says the brief's name or keyword three times is stuffed with it.
SHORT_TEXT_WORDS = 30


@dataclass(frozen=True, slots=True)
class Coherence:
    """What the coherence measures found: the repeated pieces, the share of non-words (None:
    not measured, the language has no lexicon) and the share of function words."""

    repeated: tuple[str, ...]
    non_word_share: float | None
    function_share: float
    words: int

    @property
    def salad(self) -> bool:
        return self.non_word_share is not None and self.non_word_share >= MAX_NON_WORD_SHARE

    @property
    def ungrammatical(self) -> bool:
        return self.words >= LONG_TEXT_WORDS and self.function_share < MIN_FUNCTION_SHARE

    @property
    def score(self) -> float:
        """1 for a clean text, down to 0: repetition costs 0.5, each non-word share point
        one, no grammar 0.3."""
        penalty = 0.5 * bool(self.repeated) + (self.non_word_share or 0.0)
        penalty += 0.3 * self.ungrammatical
        return round(max(0.0, 1.0 - penalty), 4)


def measure(text: str, evidence: Evidence, language: str | None = None) -> Coherence:
    """The coherence measures of ``text``, in ``language`` (the one it is written in; None:
    the brief's). Non-words are found in the languages with a word list (en, de, fr, es)."""
    language = language or evidence.language
    found = [word for word in words(text) if not word.isdigit()]
    function = FUNCTION_WORDS.get(language, FUNCTION_WORDS["en"])
    function_share = sum(word in function for word in found) / len(found) if found else 1.0
    lexicon = language in KNOWN_WORD_LANGUAGES
    return Coherence(
        repeated=_repeated(text, found, evidence, function),
        non_word_share=_non_word_share(found, evidence, language) if lexicon else None,
        function_share=function_share,
        words=len(found),
    )


def incoherence(
    text: str, evidence: Evidence, channel: str = "", language: str | None = None
) -> tuple[Flag, ...]:
    """An ``incoherent`` flag for each repeated piece, and one (the whole text) for word
    salad or (outside ``LISTS`` channels) a text with no grammar."""
    found = measure(text, evidence, language)
    flags = [Flag("incoherent", piece) for piece in found.repeated]
    if found.salad or (found.ungrammatical and channel not in LISTS):
        flags.append(Flag("incoherent", text))
    return tuple(flags)


def _repeated(
    text: str, found: Sequence[str], evidence: Evidence, function: frozenset[str]
) -> tuple[str, ...]:
    pieces: list[str] = []
    content = [word for word in found if len(word) > 1]
    for a, b in zip(content, content[1:], strict=False):
        if a not in function and not forms(a).isdisjoint(forms(b)):
            pieces.append(f"{a} {b}")  # "tote tote", "wedding weddings"
    pairs = Counter(
        (a, b)
        for a, b in zip(content, content[1:], strict=False)
        if a not in function and b not in function
    )
    for (a, b), count in pairs.items():
        if _named(a, evidence) and _named(b, evidence):
            # The brief's own words (its name, a keyword) may come back; in a short text a
            # third time is stuffing.
            most = LONG_REPEATED_PAIR if len(found) < SHORT_TEXT_WORDS else None
        else:
            most = REPEATED_PAIR if len(found) < LONG_PAIR_WORDS else LONG_REPEATED_PAIR
        if most is not None and count >= most:
            pieces.append(f"{a} {b}")
    sentences = [words(sentence) for sentence in split_sentences(text)]
    whole = Counter(" ".join(sentence) for sentence in sentences if len(sentence) > 1)
    pieces += [sentence for sentence, count in whole.items() if count > 1]
    # Sentences that all start or all end alike ("No more: fees. No more: queues. …")
    for edge in (slice(None, 2), slice(-2, None)):
        ends = Counter(" ".join(s[edge]) for s in sentences if len(s) > 2)
        pieces += [end for end, count in ends.items() if count >= REPEATED_EDGES]
    return tuple(dict.fromkeys(pieces))


def _named(word: str, evidence: Evidence) -> bool:
    """Whether a word belongs to the brief's name or keywords ("quick" of QuickFix)."""
    subject = evidence.subject
    parts = {part.casefold() for phrase in subject.phrases for part in phrase}
    return word in parts or not forms(word).isdisjoint(subject.name_forms)


def _non_word_share(found: Sequence[str], evidence: Evidence, language: str) -> float:
    letters = [word for word in found if word.replace("'", "").isalpha() and len(word) > 1]
    if not letters:
        return 0.0
    known = {w: _known(w, language) or evidence.supports_word(w) for w in set(letters)}
    unknown = [w for w in letters if not known[w]]
    return len(unknown) / len(letters) if len(unknown) >= 2 else 0.0
