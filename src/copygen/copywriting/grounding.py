"""Grounding: does a candidate say anything the brief does not support?

Three checks, pure functions over data tables, applied to every candidate:

* **unsupported entity**: a brand-like token the brief never mentions: an @handle, a domain,
  a hashtag whose words are not ordinary words or the brief's, a word marked ™/®/©, a
  CamelCase or letter-and-digit token ("EcoCharge", "X200"), an acronym outside the everyday
  ones, or (English) a capitalised word that is not an ordinary English word ("Tesla").
  Capitalised ordinary words are not names: copy is often in Title Case.
* **unsupported number**: a figure, percentage, price, duration, quantity or year whose value
  the brief does not state with a compatible unit ("24h" = "24 hours", "$50" = "50
  dollars"; a unitless figure matches any unit and the other way round). Spelled-out numbers
  are not checked.
* **risky claim**: superlatives and absolute or regulated claims ("#1", "best", "guaranteed",
  "proven", "clinically", "cure", "risk-free", "100%", "free" …) unless the brief (above all
  its facts) states the same claim. One table per language; other languages use English's.

The brief's evidence is its product, description, audience, keywords and facts (and, once
brands exist, the brand's terms). A check flags; the policy (strict, flag, off) decides.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from copygen.copywriting.lexicon import COMMON_ACRONYMS, is_common_word
from copygen.copywriting.subject import Subject
from copygen.copywriting.text import DOMAIN, base_forms, split_sentences, tokens
from copygen.domain import CopyBrief, Flag

_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{2,}")
_HASHTAG = re.compile(r"(?<![\w#])#([^\W\d_]\w*)")
# A marked word is read from where its run of word characters starts, and the run is taken
# whole: tried from every letter of a long run, "…\s?™" took 48 s on 40,000 letters.
_MARKED = re.compile(r"(?<![\w'’-])[_'’-]*+(?P<word>[^\W_][\w'’-]*+)\s?[™®©℠]")
_CAMEL_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
_CONTRACTION = re.compile(r"(?:n['’]t|['’](?:t|re|ve|ll|d|m))$", re.IGNORECASE)

#: Unit words → unit class, so "24h" and "24 hours" are the same figure.
UNITS: dict[str, str] = {
    **dict.fromkeys(("%", "percent", "per cent", "pct"), "percent"),
    **dict.fromkeys(("$", "€", "£", "¥", "usd", "eur", "gbp", "dollar", "dollars", "euro",
                     "euros", "pound", "pounds", "bucks"), "money"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "hour"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "minute"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "second"),
    **dict.fromkeys(("day", "days"), "day"),
    **dict.fromkeys(("week", "weeks", "wk", "wks"), "week"),
    **dict.fromkeys(("month", "months", "mo"), "month"),
    **dict.fromkeys(("year", "years", "yr", "yrs"), "year"),
    **dict.fromkeys(("x", "times"), "times"),
    **dict.fromkeys(("k",), "thousand"),
    **dict.fromkeys(("kg", "g", "lb", "lbs", "oz", "ml", "l", "km", "m", "mi", "mile",
                     "miles", "mph", "mah", "wh", "kwh", "w", "gb", "tb", "mb", "ft", "cm",
                     "mm", "in"), "measure"),
}  # fmt: skip
_UNIT_WORDS = "|".join(
    re.escape(unit) for unit in sorted(UNITS, key=len, reverse=True) if unit not in "$€£¥"
)
_NUMBER = re.compile(
    r"(?P<currency>[$€£¥])?\s?"
    r"(?<![\w.,#])(?P<value>\d{1,3}(?:[,.\u202f\u00a0]\d{3})+(?![\d])|\d+(?:[.,]\d+)?)"
    rf"(?:\s?(?P<unit>{_UNIT_WORDS})(?![a-z]))?",
    re.IGNORECASE,
)

_EN_CLAIMS = (
    ("#1", r"#\s?1\b|\bno\.\s?1\b|\bnumber[\s-]one\b"),
    ("best", r"\bbest\b"),
    ("guaranteed", r"\bguarantee[ds]?\b"),
    ("proven", r"\bproven\b|\bprove[sd]?\s+to\b"),
    ("clinically", r"\bclinical(?:ly)?\b"),
    ("cure", r"\bcure[sd]?\b"),
    ("risk-free", r"\brisk[\s-]?free\b"),
    ("100%", r"\b100\s?%|\b100\s+per\s?cent\b"),
    ("free", r"(?<![\w-])free\b"),
    ("superlative", r"\b(?:cheapest|fastest|strongest|safest|healthiest|lowest\s+prices?"
                    r"|world'?s\s+(?:first|best|leading)|unbeatable|miracle|award[\s-]winning"
                    r"|doctor[\s-]recommended|scientifically|certified|official)\b"),
)  # fmt: skip
_PERCENT_100 = ("100%", r"\b100\s?%|\b100\s+(?:prozent|pour\s?cent|por\s+ciento)\b")
#: Risky claims per language: (name, pattern). A claim is supported when the same pattern
#: matches the brief.
RISKY_CLAIMS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": _EN_CLAIMS,
    "de": (
        ("#1", r"#\s?1\b|\bnummer\s+(?:1|eins)\b"),
        ("best", r"\bbeste[nmrs]?\b"),
        ("guaranteed", r"\bgarantier(?:t|te|ten)\b|\bgarantie\b"),
        ("proven", r"\b(?:nach)?gewiesen\b|\bbewiesen\b"),
        ("clinically", r"\bklinisch\b"),
        ("cure", r"\bheilt\b|\bheilung\b"),
        ("risk-free", r"\brisikofrei\b|\bohne\s+risiko\b"),
        _PERCENT_100,
        ("free", r"\bkostenlos\w*\b|\bgratis\b|\bumsonst\b"),
    ),
    "fr": (
        ("#1", r"#\s?1\b|\bnuméro\s+(?:1|un)\b"),
        ("best", r"\bmeilleur(?:e|s|es)?\b"),
        ("guaranteed", r"\bgaranti(?:e|s|es)?\b"),
        ("proven", r"\bprouvé(?:e|s|es)?\b"),
        ("clinically", r"\bcliniquement\b"),
        ("cure", r"\bguérit\b|\bguérison\b"),
        ("risk-free", r"\bsans\s+risque\b"),
        _PERCENT_100,
        ("free", r"\bgratuit(?:e|s|es)?\b|\bofferte?s?\b"),
    ),
    "es": (
        ("#1", r"#\s?1\b|\bnúmero\s+(?:1|uno)\b"),
        ("best", r"\bmejor(?:es)?\b"),
        ("guaranteed", r"\bgarantizad[oa]s?\b"),
        ("proven", r"\bprobad[oa]s?\b|\bdemostrad[oa]s?\b"),
        ("clinically", r"\bclínicamente\b"),
        ("cure", r"\bcura\b"),
        ("risk-free", r"\bsin\s+riesgo\b"),
        _PERCENT_100,
        ("free", r"\bgratis\b|\bgratuit[oa]s?\b"),
    ),
}
_CLAIMS = {
    language: tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in table)
    for language, table in RISKY_CLAIMS.items()
}
#: Languages whose capitalised common words the lexicon knows (German capitalises nouns).
LEXICON_LANGUAGES = frozenset({"en"})


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a brief supports: its words (and their base forms), its figures, its text and
    its subject."""

    language: str
    words: frozenset[str]
    numbers: frozenset[tuple[str, str | None]]
    text: str
    #: What the brief is about: its names and anchor words (the worth checks read it).
    subject: Subject = Subject()

    @classmethod
    def of(cls, brief: CopyBrief, terms: Sequence[str] = ()) -> Evidence:
        """The evidence of ``brief``, plus ``terms`` (a brand's names and preferred terms)."""
        parts = [brief.product, brief.description, brief.audience, *brief.keywords,
                 *brief.facts, *terms]  # fmt: skip
        text = unicodedata.normalize("NFC", "\n".join(parts))
        words = {form for token in tokens(text) for form in base_forms(token)}
        numbers = {(value, unit) for value, unit, _ in _numbers(text)}
        language = brief.language.split("-")[0].lower()
        subject = Subject.of(brief, terms)
        return cls(language, frozenset(words), frozenset(numbers), text.casefold(), subject)

    def supports_word(self, word: str) -> bool:
        return not base_forms(word).isdisjoint(self.words)

    def supports_number(self, value: str, unit: str | None) -> bool:
        if unit is None:
            return any(known == value for known, _ in self.numbers)
        return (value, unit) in self.numbers or (value, None) in self.numbers


def check_grounding(text: str, evidence: Evidence) -> tuple[Flag, ...]:
    """Every unsupported entity, number and risky claim in ``text``, in that order."""
    return (
        *unsupported_entities(text, evidence),
        *unsupported_numbers(text, evidence),
        *risky_claims(text, evidence),
    )


#: A repair must keep at least this share of the text (a stub is worse than a regeneration).
MIN_REPAIRED_SHARE = 0.5


def repair(text: str, flags: Sequence[Flag]) -> str:
    """``text`` without what the brief does not support, where that stands apart: flagged
    hashtags, handles and domains are dropped, and so are whole sentences that carry another
    flagged name, figure or claim. "" when too little would be left."""
    kept = text
    for flag in flags:
        if flag.text.startswith(("#", "@")) or DOMAIN.fullmatch(flag.text):
            kept = kept.replace(flag.text, " ")
    inline = [flag.text for flag in flags if flag.text in kept]
    sentences = split_sentences(kept)
    kept = " ".join(s for s in sentences if not any(f in s for f in inline))
    kept = re.sub(r"[ \t]{2,}", " ", kept).strip(" ,;:-–—")
    return kept if len(kept) >= MIN_REPAIRED_SHARE * len(text) else ""


def unsupported_entities(text: str, evidence: Evidence) -> tuple[Flag, ...]:
    found: list[str] = []
    rest = text
    for pattern in (_HANDLE, DOMAIN):
        for match in pattern.finditer(rest):
            if not evidence.supports_word(match.group().lstrip("@").lower()):
                found.append(match.group())
        rest = pattern.sub(" ", rest)
    for match in _HASHTAG.finditer(rest):
        words = _CAMEL_PART.findall(match.group(1))
        if not all(_ordinary(word, evidence) for word in words):
            found.append(match.group())
    rest = _HASHTAG.sub(" ", rest)
    for match in _MARKED.finditer(rest):
        if not evidence.supports_word(match.group("word")):
            found.append(rest[match.start("word") : match.end()])
    rest = _MARKED.sub(" ", rest)
    lexicon = evidence.language in LEXICON_LANGUAGES
    for token in tokens(rest):
        word = _POSSESSIVE.sub("", token)
        if len(word) >= 2 and _brand_like(word, lexicon) and not evidence.supports_word(word):
            found.append(word)
    return tuple(Flag("unsupported_entity", text) for text in _unique(found))


def unsupported_numbers(text: str, evidence: Evidence) -> tuple[Flag, ...]:
    found = [
        written
        for value, unit, written in _numbers(text)
        if not evidence.supports_number(value, unit)
    ]
    return tuple(Flag("unsupported_number", text) for text in _unique(found))


def risky_claims(text: str, evidence: Evidence) -> tuple[Flag, ...]:
    table = _CLAIMS.get(evidence.language, _CLAIMS["en"])
    found = [
        match.group()
        for _, pattern in table
        if (match := pattern.search(text)) is not None and not pattern.search(evidence.text)
    ]
    return tuple(Flag("risky_claim", text) for text in _unique(found))


def _brand_like(word: str, lexicon: bool) -> bool:
    """Whether a word looks like a name: CamelCase, letters with digits, an uncommon
    acronym, or (with a lexicon) a capitalised word that is not an ordinary word."""
    if not word[0].isalpha():
        return False  # "24h", "4K", "2nd": figures, for the number check
    if any(ch.isdigit() for ch in word):
        return True
    if any(a.islower() and b.isupper() for a, b in zip(word, word[1:], strict=False)):
        return True
    if word.isupper():
        return word not in COMMON_ACRONYMS and not (len(word) > 2 and is_common_word(word))
    if not lexicon or not word[0].isupper():
        return False
    bare = _CONTRACTION.sub("", word)  # "Don't" → "Do", "You're" → "You"
    return not (is_common_word(word) or (bare != word and is_common_word(bare)))


def _ordinary(word: str, evidence: Evidence) -> bool:
    return word.isdigit() or evidence.supports_word(word) or is_common_word(word)


def _numbers(text: str) -> Iterable[tuple[str, str | None, str]]:
    """(normalised value, unit class or None, the text as written) of each figure."""
    for match in _NUMBER.finditer(text):
        raw = match.group("value")
        unit_word = match.group("currency") or match.group("unit")
        unit = UNITS.get(unit_word.lower()) if unit_word else None
        yield _value(raw), unit, match.group().strip()


def _value(raw: str) -> str:
    """ "1,000" and "1000" → "1000"; "2.5" and "2,5" → "2.5"; "24.0" → "24"."""
    digits = re.sub(r"[\u202f\u00a0]", "", raw)
    groups = re.split(r"[.,]", digits)
    if len(groups) > 1 and all(len(group) == 3 for group in groups[1:]):
        number = float("".join(groups))
    elif len(groups) == 2:
        number = float(f"{groups[0]}.{groups[1]}")
    else:
        number = float(digits)
    return f"{number:g}"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
