"""Copygen's text rules, each stated once: what a word is, the form two words are compared in
(``normalise``, ``base_forms``), where a sentence ends, and what a domain looks like. Keywords,
banned words, grounding, readability, cutting, repair and URL counting all use these.

Every pattern here runs on model output inside the event loop, so each one is linear in the
length of the text: a run of characters is consumed once (possessive quantifiers) and a match
is only tried where such a run starts (a ``(?<!...)`` guard), never again from each of its
positions. The patterns these replace took seconds to minutes on 10-40k characters of
adversarial output (tests/unit/copywriting/test_adversarial_output.py).
"""

from __future__ import annotations

import functools
import unicodedata

import regex

#: A word: letters (with their combining marks) and digits, apostrophes inside ("don't",
#: "hiker's"). Hyphens, underscores and other symbols separate words: "risk-free" is "risk"
#: and "free", so a banned "risk-free" also catches "risk free".
WORD = regex.compile(r"[\p{L}\p{N}][\p{L}\p{M}\p{N}]*+(?:['’][\p{L}\p{M}\p{N}]++)*+")
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'"})


@functools.lru_cache(maxsize=1 << 14)
def normalise(word: str) -> str:
    """The form words are compared in: compatibility-composed (full-width letters and
    ligatures become plain letters, so "ｃｈｅａｐ" is "cheap"), case-folded ("Straße" is
    "strasse") and with one apostrophe."""
    return unicodedata.normalize("NFKC", word).casefold().translate(_APOSTROPHES)


def tokens(text: str) -> list[str]:
    """The words of ``text`` as written (case kept), after canonical composition."""
    return WORD.findall(unicodedata.normalize("NFC", text))


def words(text: str) -> list[str]:
    """The words of ``text``, normalised.

    >>> words("Don’t miss the RISK-FREE trial!")
    ["don't", 'miss', 'the', 'risk', 'free', 'trial']
    """
    return list(_words(text))


#: One candidate is read by a dozen checks: its words are worked out once (a 40,000-character
#: text took 0.9 s through the worth checks, 16 tokenisations of it).
@functools.lru_cache(maxsize=256)
def _words(text: str) -> tuple[str, ...]:
    return tuple(normalise(token) for token in tokens(text))


# --- base forms -----------------------------------------------------------------------------

#: English inflections: (suffix, what replaces it, the shortest stem it may leave). A stem
#: must also keep a vowel ("string" is not "str" + "ing", "thing" not "th" + "ing"). "-ly"
#: needs four letters, so "apply" is not "app" + "ly" nor "early" "ear" + "ly".
_INFLECTIONS = (
    ("ies", "y", 2), ("ied", "y", 2), ("ier", "y", 2), ("iest", "y", 2), ("ily", "y", 3),
    ("es", "", 2), ("s", "", 2),
    ("ed", "", 2), ("ed", "e", 2), ("ing", "", 2), ("ing", "e", 2),
    ("er", "", 2), ("er", "e", 2), ("est", "", 2), ("est", "e", 2), ("ly", "", 4),
)  # fmt: skip
#: Suffixes before which a short vowel's consonant doubles ("running" → run, "bigger" → big).
_DOUBLING = frozenset({"ed", "ing", "er", "est"})
_VOWELS = frozenset("aeiouyàáâäæèéêëìíîïòóôöøœùúûü")


def base_forms(word: str) -> frozenset[str]:
    """``word`` normalised, and what one English inflection may have made it from.

    Two words are the same word when their base forms meet: "batteries" and "battery" (both
    have "battery"), "cheapest" and "cheap", "running" and "run", "Hiker's" and "hikers". A
    rule of thumb, not a dictionary: it over-generates stems ("charging" → charg, charge),
    which is harmless for looking words up and rarely joins two unrelated words; it never
    strips a derivation ("cheapskate" is not "cheap", "freedom" is not "free").

    >>> sorted(base_forms("Batteries"))
    ['batteri', 'batterie', 'batteries', 'battery']
    """
    word = normalise(word)
    forms = {word}
    if word.endswith("'s") and len(word) > 2:
        word = word[:-2]  # the possessive ("hiker's" → hiker), then one inflection
        forms.add(word)
    for suffix, replacement, shortest in _INFLECTIONS:
        stem = word[: -len(suffix)]
        voiced = stem + replacement if replacement == "y" else stem  # "tried" → try
        if not word.endswith(suffix) or len(stem) < shortest or _VOWELS.isdisjoint(voiced):
            continue
        if suffix == "s" and stem.endswith("s"):
            continue  # "glass", "less": not plurals
        forms.add(stem + replacement)
        if suffix in _DOUBLING and len(stem) > 3 and stem[-1] == stem[-2]:
            forms.add(stem[:-1])  # "runn" → run, and "fill" stays too
    return frozenset(forms)


# --- sentences ------------------------------------------------------------------------------

#: A sentence's end: a run of terminal punctuation, any closing quotes or brackets, then
#: whitespace or the end of the text. The guard starts a match only where a run starts, so
#: "!!!…!x" is read once, not once per "!".
_SENTENCE_END = regex.compile(r"(?<![.!?…])[.!?…]++[\"'”’»)\]]*+(?=\s|\Z)")


def sentence_ends(text: str) -> list[int]:
    """The offset just past each sentence's closing punctuation (and quotes or brackets).

    >>> sentence_ends('Go now." Then stop!! And then the')
    [8, 20]
    """
    return [match.end() for match in _SENTENCE_END.finditer(text)]


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped: each ends at closing punctuation followed by
    whitespace (``sentence_ends``) or at a line break (a line of copy is a unit of its own).
    Decimal points ("2.5") and dots inside domains do not end a sentence; abbreviations
    ("No. 1") do, as in most copy they are rare and harmless to split.

    >>> split_sentences("Charge anywhere. Hike longer!\\nFree shipping")
    ['Charge anywhere.', 'Hike longer!', 'Free shipping']
    """
    sentences: list[str] = []
    for line in text.split("\n"):
        start = 0
        for end in (*sentence_ends(line), len(line)):
            sentences.append(line[start:end].strip())
            start = end
    return [sentence for sentence in sentences if sentence]


# --- domains and links ----------------------------------------------------------------------

#: Top-level domains recognised in copy (the common generic ones and the markets copygen
#: writes for): "sunfire.com", "shop.example.de".
TLDS = (
    "com", "net", "org", "io", "co", "ai", "app", "dev", "shop", "store", "info", "biz", "me",
    "ly", "de", "fr", "es", "it", "nl", "uk", "us", "eu",
)  # fmt: skip
# A label starts with a letter or digit where no label or hyphen precedes it; dots end
# labels, the last one before a known TLD. Labels are taken whole (possessive): a failed try
# gives back whole labels only, and the guard keeps the try from restarting inside the run.
_DOMAIN = (
    r"(?<![\w-])(?<![\w-]\.)\w[\w-]*+(?:\.[\w-]++)*\.(?:" + "|".join(TLDS) + r")(?![\w-])"
    r"(?:/[^\s<>\"]*+)?"
)
#: A bare domain, with an optional path: "sunfire.com", "solar.shop/now".
DOMAIN = regex.compile(_DOMAIN, regex.IGNORECASE)
#: A link: a URL with a scheme, one starting "www.", or a bare domain.
URL = regex.compile(r"(?:https?://|www\.)[^\s<>\"]++|" + _DOMAIN, regex.IGNORECASE)
