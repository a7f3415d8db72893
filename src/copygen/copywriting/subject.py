"""What a brief is about, and whether a variant is about it (the ``off_topic`` check).

Pure lexical anchoring: a variant is about the brief's product when it shares a content word
(compared in base form, text.base_forms) with the brief. The product's name, its keywords and
the brand's names are *name* anchors; the description, facts and audience are *brief* anchors,
weaker: "Yachts of the Sea!" shares "sea" with "Guided sea-kayak tours" and is still about
something else. Where a channel is a title that should name the product (headlines, titles)
only a name anchor counts; elsewhere any anchor does (``ANCHORING``, a table). A long word
anchors also as the start or end of a compound ("Rucksack" and "Wanderrucksack").

A small model drifts to a neighbouring topic in recognisable ways ("Trail Shoes That Go Further"
for invoicing software, "Plan your dream wedding" for a dentist): none of them shares a word
with the brief. A text with no content word ("Shop Now") is not judged; a long one needs two
distinct anchors (``ANCHORS_NEEDED``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import regex

from copygen.copywriting.language import FUNCTION_WORDS
from copygen.copywriting.lexicon import is_common_word
from copygen.copywriting.text import base_forms, tokens, words
from copygen.domain import CopyBrief, Flag

#: Words that say nothing about what a product is: every language's function words and the
#: filler of ad copy. They never anchor a text to a brief.
FILLER = frozenset(
    {word for table in FUNCTION_WORDS.values() for word in table}
    | set(
        """
        new best great good top perfect ultimate amazing awesome incredible better more most
        now today day days time times way ways make makes get gets go goes come take find
        life world journey dream dreams adventure adventures experience people everyone
        everything something thing things one first next little big small lot free shop buy
        order try start join us our ours you yours just like love know need needs want help
        """.split()  # noqa: SIM905 - a word list reads better as text
    )
)
Anchors = Literal["name", "brief", "none"]


@dataclass(frozen=True, slots=True)
class Anchoring:
    """How a channel's text must be anchored to its brief: by a ``name`` anchor (the product's
    name, a keyword, the brand), by any anchor (``brief``) or not at all (``none``), once it
    has at least ``min_words`` content words."""

    needs: Anchors
    min_words: int = 1


_TITLE = Anchoring("name")
_COPY = Anchoring("brief")
#: Per channel: titles that stand for the product (headlines, link descriptions, SEO and
#: Amazon titles) name it; longer copy may describe it instead; a display path of one or two
#: words is judged only when it has two ("Mortgage Lite" for a tote bag; "Shop" is fine).
ANCHORING: dict[str, Anchoring] = {
    "google_ads_headline": _TITLE,
    "google_ads_description": _COPY,
    "google_ads_path": Anchoring("brief", min_words=2),
    "meta_primary_text": _COPY,
    "meta_headline": _TITLE,
    "meta_link_description": _TITLE,
    "x_post": _COPY,
    "linkedin_post": _COPY,
    "linkedin_ad_headline": _TITLE,
    "email_subject": _COPY,
    "sms": _COPY,
    "seo_title": _TITLE,
    "meta_description": _COPY,
    "app_store_subtitle": _COPY,
    "play_short_description": _COPY,
    "amazon_title": _TITLE,
    "product_description": _COPY,
}
#: A word this long may anchor as part of a compound ("Rucksack" of "Wanderrucksack").
MIN_COMPOUND_PART = 5
#: (content words, distinct anchors needed): a long text that mentions the product once and
#: then talks about something else is off topic. On the gold set's calibration split, texts
#: of 8+ content words with one anchor were off topic 13 times in 15 (and unusable in all).
ANCHORS_NEEDED = ((1, 1), (8, 2))

#: text.base_forms and lexicon.is_common_word, remembered: the worth checks ask about the
#: same words many times.
forms = functools.lru_cache(maxsize=1 << 14)(base_forms)
common = functools.lru_cache(maxsize=1 << 14)(is_common_word)

_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
#: A run of capitalised words (or figures) in the product field, joined by spaces or "&":
#: "Tidewater Kayak Tours", "Ember & Oak", "Route 9 Cycles".
_CAPITALISED_RUN = regex.compile(
    r"(?<![\w'’])[\p{Lu}\d][\w'’-]*+(?:(?:\s++|\s*+&\s*+)[\p{Lu}\d][\w'’-]*+)*+"
)


@dataclass(frozen=True, slots=True)
class Subject:
    """What a brief is about: its proper names and the words that anchor a text to it.

    ``names``: the product's and brand's names as written ("FitTrack", "Tidewater", "Blue",
    "Heron"); ``phrases``: the name phrases word by word, CamelCase names split into their
    parts (("Tidewater", "Kayak", "Tours"), ("Fit", "Track")); ``name_forms`` and
    ``brief_forms``: the base forms of the name anchors and of the other content words.
    """

    language: str = "en"
    names: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    name_forms: frozenset[str] = frozenset()
    brief_forms: frozenset[str] = frozenset()

    @classmethod
    def of(cls, brief: CopyBrief, terms: Sequence[str] = ()) -> Subject:
        """The subject of ``brief``; ``terms`` are a brand's name and preferred terms (and
        facts), which name it too."""
        product = _nfc(brief.product)
        context = [_nfc(part) for part in (brief.description, brief.audience, *brief.facts)]
        keywords = [_nfc(keyword) for keyword in brief.keywords]
        lower = {token for part in (product, *context, *keywords) for token in tokens(part)}
        lower = {token for token in lower if token.islower()}
        names: list[str] = []
        phrases: list[tuple[str, ...]] = []
        for run in _runs(product, *(_nfc(term) for term in terms[:1])):
            phrases.append(run)
            names += [t for t in run if _is_name(t, lower)]
        if len(whole := tuple(tokens(product))) > 1:
            phrases.append(whole)  # "GlowUp teeth whitening kit": what stands around the name
        for part in (*context, *terms):
            names += [t for t in tokens(part) if _camel(t) and t[0].isupper()]
        for name in names:
            if _camel(name):
                phrases.append(tuple(_CAMEL.findall(name)))
        name_words = [product, *keywords, *terms[:1], *names]
        return cls(
            language=brief.language.split("-")[0].lower(),
            names=tuple(dict.fromkeys(names)),
            phrases=tuple(dict.fromkeys(phrases)),
            name_forms=_content_forms(name_words),
            brief_forms=_content_forms([*context, *terms[1:]]),
        )

    @property
    def empty(self) -> bool:
        return not (self.name_forms or self.brief_forms)

    def distinctive(self, name: str) -> bool:
        """Whether a name is unlike any ordinary word: CamelCase, or (in English, which has a
        lexicon) not an English word. "Northwind" is; "Heron" and "Lumen" are not."""
        return _camel(name) or (self.language == "en" and not common(name))


def content_words(text: str) -> list[str]:
    """The words of ``text`` that can say what it is about: no filler, no figures, no
    single letters."""
    return [word for word in words(text) if _content(word)]


def anchors(text: str, subject: Subject) -> tuple[set[str], set[str]]:
    """The content words of ``text`` that are name anchors, and those that are only brief
    anchors."""
    names: set[str] = set()
    brief: set[str] = set()
    for word in set(content_words(text)):
        found = forms(word)
        if not found.isdisjoint(subject.name_forms) or _compound(word, subject.name_forms):
            names.add(word)
        elif not found.isdisjoint(subject.brief_forms) or _compound(word, subject.brief_forms):
            brief.add(word)
    return names, brief


def needed(content: int) -> int:
    """How many distinct anchors a text of ``content`` content words needs."""
    return max(anchors for words, anchors in ANCHORS_NEEDED if content >= words)


def relevance(text: str, subject: Subject) -> float:
    """How anchored ``text`` is to its brief, 0..1: 1 with a name anchor, 0.5 with only brief
    anchors, 0 with none, halved when a long text has fewer anchors than it needs; 1 when
    there is nothing to judge (an empty brief or text)."""
    content = set(content_words(text))
    if subject.empty or not content:
        return 1.0
    names, brief = anchors(text, subject)
    found = 1.0 if names else 0.5 if brief else 0.0
    return found if len(names | brief) >= needed(len(content)) else found / 2


def off_topic(text: str, subject: Subject, channel: str) -> tuple[Flag, ...]:
    """An ``off_topic`` flag (the whole text) when ``text`` shares no anchor the channel
    needs with the brief (``ANCHORING``)."""
    rule = ANCHORING.get(channel, _COPY)
    content = len(set(content_words(text)))
    if rule.needs == "none" or subject.empty or content < rule.min_words:
        return ()
    names, brief = anchors(text, subject)
    by_name = rule.needs == "name" and subject.name_forms
    anchored = bool(names) if by_name else bool(names or brief)
    if anchored and len(names | brief) >= needed(content):
        return ()
    return (Flag("off_topic", text),)


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _content(word: str) -> bool:
    return len(word) > 1 and not word.isdigit() and word not in FILLER


def _content_forms(parts: Iterable[str]) -> frozenset[str]:
    return frozenset(
        form
        for part in parts
        for word in words(part)
        if _content(word)
        for form in base_forms(word)
    )


def _compound(word: str, forms: frozenset[str]) -> bool:
    """Whether ``word`` starts or ends a longer word of ``forms``, or one of them starts or
    ends it, the shorter having at least MIN_COMPOUND_PART letters."""
    for form in forms:
        short, long = sorted((word, form), key=len)
        if len(short) >= MIN_COMPOUND_PART and (long.startswith(short) or long.endswith(short)):
            return True
    return False


def _camel(token: str) -> bool:
    return any(a.islower() and b.isupper() for a, b in zip(token, token[1:], strict=False))


def _runs(*parts: str) -> list[tuple[str, ...]]:
    """The capitalised runs of ``parts``, word by word."""
    return [
        tuple(tokens(match.group())) for part in parts for match in _CAPITALISED_RUN.finditer(part)
    ]


def _is_name(token: str, lower: set[str]) -> bool:
    """Whether a word of a capitalised run is part of a name rather than a common noun the brief
    also writes in lower case ("Kayak" of "Tidewater Kayak Tours" with "sea-kayak tours")."""
    if len(token) < 3 or not token[0].isupper() or token.casefold() in FILLER:
        return False
    if token.isupper():
        return False  # an acronym ("GPS", "API"): read, not spelt
    word = token.lower()
    return _camel(token) or not ({word, word + "s", word + "es"} & lower or word[:-1] in lower)
