"""Turn raw model completions into copy: clean, measure and check each one
(``check_completion``); ranking.py chooses among the checked ones.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from copygen.copywriting.channels import Channel
from copygen.copywriting.fragments import drop_preamble
from copygen.copywriting.grounding import Evidence, check_grounding, repair
from copygen.copywriting.names import repair_names
from copygen.copywriting.readability import has_call_to_action, readability
from copygen.copywriting.text import base_forms, sentence_ends, words
from copygen.copywriting.worth import assess
from copygen.domain import Flag, Grounding, Readability, Variant

_CHAT_TOKEN = re.compile(r"<\|[^|>]{1,40}\|>|</?s>")
_NUMBERING = re.compile(r"^\s*(?:\d{1,2}\s*[.):-]|[-*•#>]+)\s+")
# The spaces, number and bold marker after the label are each taken whole: as three
# optional runs of spaces they matched a label and 3,000 spaces in 95 s (cubic).
_LABEL = re.compile(
    r"^\s*+(?:\*\*)?(?:headline|subject(?: line)?|title|tagline|description|post|tweet|sms|"
    r"text|copy|answer|ad(?: copy)?|message|option|variant|path|subtitle)"
    r"\s*+(?:\d++\s*+)?(?:\*\*\s*+)?[:\-–]\s*",
    re.IGNORECASE,
)
_MARKDOWN = re.compile(r"\*\*|__|`")
_QUOTE_PAIRS = {'"': '"', "“": "”", "'": "'", "‘": "’", "«": "»", "„": "“"}


def clean_text(raw: str, *, single_line: bool, truncated: bool) -> str:
    """Remove the artefacts a chat model wraps around copy.

    ``truncated`` says the model stopped at its token budget: a trailing unfinished
    sentence is then cut back to the last complete one.
    """
    text = _CHAT_TOKEN.sub("", raw).replace("\r", "")
    lines = [line.strip() for line in text.split("\n")]
    lines = [_strip_decoration(line) for line in lines if line]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    if single_line:
        text = lines[0]
        truncated = truncated and len(lines) == 1
    else:
        text = "\n".join(lines)
    text = _strip_quotes(text)
    if truncated:
        text = _cut_unfinished(text)
    return " ".join(text.split(" ")).strip()


def _strip_decoration(line: str) -> str:
    for _ in range(3):
        stripped = _LABEL.sub("", _NUMBERING.sub("", line))
        if stripped == line:
            break
        line = stripped
    return _MARKDOWN.sub("", line).strip()


def _strip_quotes(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTE_PAIRS and text.endswith(_QUOTE_PAIRS[text[0]]):
        text = text[1:-1].strip()
    if text[:1] in _QUOTE_PAIRS and _QUOTE_PAIRS[text[0]] not in text[1:]:
        text = text[1:].strip()
    if text[-1:] in _QUOTE_PAIRS.values() and text.count(text[-1]) == 1 and text[-1] not in "'’":
        text = text[:-1].strip()
    return text


def _cut_unfinished(text: str) -> str:
    ends = sentence_ends(text)
    if ends and ends[-1] < len(text.rstrip()):
        return text[: ends[-1]].strip()
    return text


def keywords_missing(text: str, keywords: Iterable[str]) -> tuple[str, ...]:
    """Keywords absent from ``text``, tolerant of case and simple inflection
    (text.base_forms: "charger" matches "Chargers", "battery" matches "batteries"). Each
    word of a keyword must appear, in any order; a keyword of symbols only (an emoji) must
    appear as it is."""
    present = {form for word in set(words(text)) for form in base_forms(word)}
    missing = []
    for keyword in keywords:
        wanted = words(keyword)
        if not wanted:  # no letters or digits (an emoji, a symbol): it must appear as it is
            if keyword.strip() not in text:
                missing.append(keyword)
        elif any(base_forms(word).isdisjoint(present) for word in wanted):
            missing.append(keyword)
    return tuple(missing)


def banned_found(text: str, banned: Iterable[str]) -> tuple[str, ...]:
    """Banned words and phrases present in ``text``: the phrase's words in a row, each
    matched like a keyword's ("cheap" catches "cheapest" and "cheaply", not "cheapskate";
    "risk-free" catches "risk free")."""
    found_words = words(text)
    forms = {word: base_forms(word) for word in set(found_words)}
    found_forms = [forms[word] for word in found_words]
    found = []
    for phrase in banned:
        wanted = [base_forms(word) for word in words(phrase)]
        if wanted and _in_a_row(wanted, found_forms):
            found.append(phrase)
    return tuple(found)


def _in_a_row(wanted: list[frozenset[str]], found: list[frozenset[str]]) -> bool:
    return any(
        all(not forms.isdisjoint(found[start + i]) for i, forms in enumerate(wanted))
        for start in range(len(found) - len(wanted) + 1)
    )


# A break is tried only where a run of spaces starts and the run is taken whole: "\s+(?=…)"
# tried from every space of a 20,000-space run took 44 s.
_CLAUSE_BREAK = re.compile(r"(?<=[,:;!?.|–—])\s++|(?<!\s)\s++(?=[-–—|]\s)")
#: Before a preposition or relative word that starts a trailing phrase, per language: where a
#: title-like text (``Channel.cuts_phrases``) may end when no clause boundary makes it fit.
_PHRASE_BREAK = {
    "en": re.compile(
        r"(?<!\s)\s++(?=(?:for|with|without|in|on|at|from|by|while|when|that|which)\s)",
        re.IGNORECASE,
    ),
}
_TRAILING_JOINERS = " ,:;-–—|"
MIN_SHORTENED_SHARE = 0.35


def shorten_to_fit(text: str, channel: Channel, limit: int | None, language: str = "en") -> str:
    """Keep the longest run of whole leading clauses that fits ``limit``; for a title-like
    channel, else the longest run of leading phrases.

    "Solar Phone Charger, Fuel Your Journey to Adventure" becomes "Solar Phone Charger" for a
    30-character headline, and so does "Solar Phone Charger for Hikers Who Go Further".
    Returns ``text`` unchanged when it fits or when no boundary leaves at least ~a third of
    the limit (a stub is worse than a regeneration).
    """
    if limit is None or channel.measure(text).units <= limit:
        return text
    shortened = _leading(_CLAUSE_BREAK.split(text), channel, limit)
    phrases = _PHRASE_BREAK.get(language)
    if not shortened and channel.cuts_phrases and phrases is not None:
        shortened = _leading(phrases.split(text), channel, limit)
    return shortened or text


def _leading(pieces: list[str], channel: Channel, limit: int) -> str:
    """The longest join of leading ``pieces`` within ``limit`` and not a stub, else ""."""
    best = ""
    for end in range(1, len(pieces)):
        candidate = " ".join(pieces[:end]).rstrip(_TRAILING_JOINERS).strip()
        if channel.measure(candidate).units > limit:
            break
        best = candidate
    if best and channel.measure(best).units >= MIN_SHORTENED_SHARE * limit:
        return best
    return ""


# A placeholder holds no opening bracket of its kind, so each "[" of "[[[…" is read once.
_PLACEHOLDER = re.compile(r"\[[^\[\]]{1,40}\]|\{[^{}]{1,40}\}|<[^<>]{1,40}>")


@dataclass(frozen=True, slots=True)
class Checked:
    """A cleaned variant and the rules it breaks.

    ``hard_failures`` can never be returned (over a hard limit, banned word, forbidden
    character, template placeholder, and under the strict grounding policy an unsupported
    entity, number or claim); ``soft_failures`` may be returned when nothing better is left
    (over a soft limit, keywords missing, grounding flags under the flag policy).
    """

    variant: Variant
    hard_failures: tuple[str, ...]
    soft_failures: tuple[str, ...]
    #: Everything the grounding checks found (the variant carries them only under ``flag``).
    flags: tuple[Flag, ...] = ()

    @property
    def acceptable(self) -> bool:
        return not self.hard_failures

    @property
    def perfect(self) -> bool:
        return not self.hard_failures and not self.soft_failures

    def failing(self, failure: str) -> Checked:
        """This candidate with one more hard failure."""
        return replace(self, hard_failures=(*self.hard_failures, failure))

    def with_relevance(self, relevance: float | None) -> Checked:
        if relevance is None:
            return self
        return replace(self, variant=replace(self.variant, relevance=round(relevance, 4)))

    def with_likelihood(self, likelihood: float | None) -> Checked:
        if likelihood is None:
            return self
        return replace(self, variant=replace(self.variant, likelihood=round(likelihood, 4)))

    def with_voice(self, voice: float) -> Checked:
        return replace(self, variant=replace(self.variant, voice=voice))


#: How the score combines the checks (weights sum to 1; each flag let through costs FLAG_COST).
SCORE_WEIGHTS = {
    "fit": 0.25, "keywords": 0.15, "readability": 0.05, "cta": 0.10,
    "relevance": 0.25, "coherence": 0.20,
}  # fmt: skip
FLAG_COST = 0.1
#: Hard failures each flag type makes under the strict policy (the worth checks' own names).
_FAILURE = {"unsupported_entity": "grounding", "unsupported_number": "grounding",
            "risky_claim": "grounding"}  # fmt: skip
#: Flags whose text stands apart, so that dropping it (or its sentence) may leave good copy.
_REPAIRABLE = frozenset({*_FAILURE, "invented_claim", "unsafe", "fragment"})


def score_variant(
    text: str,
    units: int,
    limit: int | None,
    fits: bool,
    missing: int,
    keywords: int,
    *,
    ease: Readability | None = None,
    cta: bool | None = None,
    flags: int = 0,
    relevance: float = 1.0,
    coherence: float = 1.0,
) -> float:
    """0..1, a documented combination of the checks (docs/quality.md, "Score"):

    * fit: 1 within the limit (0.5-1 when shorter than 30% of it), falling linearly over it;
    * keywords: the share of required keywords present;
    * readability: reading ease / 100 clipped to 0..1 where the language has a formula, else
      1 for a mean word length of 3-7 letters and 0.6 otherwise;
    * cta: 1 when a call to action is present or the channel asks for none, else 0;
    * relevance: 1 when the text names the product (a name anchor), 0.5 when it shares only
      other words with the brief, 0 when none (subject.relevance);
    * coherence: 1 for a clean text, less for repetition, non-words, no grammar
      (coherence.Coherence.score);
    minus FLAG_COST for each flag the policy let through.
    """
    if limit is None:
        fit = 1.0
    elif fits:
        fit = 1.0 if units >= 0.3 * limit else 0.5 + units / (0.6 * limit)
    else:
        fit = max(0.0, 1.0 - (units - limit) / limit)
    coverage = 1.0 if keywords == 0 else (keywords - missing) / keywords
    if ease is not None:
        reads = min(1.0, max(0.0, ease.ease / 100))
    else:
        found = words(text)
        mean_len = sum(map(len, found)) / len(found) if found else 0.0
        reads = 1.0 if 3.0 <= mean_len <= 7.0 else 0.6
    parts = {
        "fit": fit, "keywords": coverage, "readability": reads, "cta": cta is not False,
        "relevance": relevance, "coherence": coherence,
    }  # fmt: skip
    score = sum(SCORE_WEIGHTS[name] * float(value) for name, value in parts.items())
    return round(max(0.0, score - FLAG_COST * flags), 4)


def check_variant(
    text: str,
    channel: Channel,
    keywords: Sequence[str],
    max_chars: int | None,
    banned: Sequence[str] = (),
    *,
    evidence: Evidence | None = None,
    grounding: Grounding = "off",
    language: str = "en",
) -> Checked:
    """Measure and check one cleaned text against the brief's rules. With ``evidence`` and a
    grounding policy other than ``off``, unsupported entities, numbers and claims and what
    the worth checks find (worth.py: off_topic, misspelt_name, fragment, unsafe,
    invented_claim, incoherent, wrong_language) are hard failures (``strict``, named
    "grounding" or by the worth flag's type) or soft ones that the variant carries as flags
    (``flag``). With ``evidence`` the score includes relevance and coherence."""
    measure = channel.measure(text, max_chars)
    limit = measure.limit
    over = limit is not None and measure.units > limit
    hard: list[str] = []
    soft: list[str] = []
    if over:
        (hard if channel.kind == "hard" or max_chars is not None else soft).append("length")
    if any(ch in text for ch in channel.forbidden_chars):
        hard.append("forbidden_character")
    if banned_found(text, banned):
        hard.append("banned_word")
    if _PLACEHOLDER.search(text):
        hard.append("placeholder")
    missing = keywords_missing(text, keywords)
    if missing:
        soft.append("keywords")
    flags: tuple[Flag, ...] = ()
    worth = assess(text, evidence, channel.id) if evidence is not None else None
    if evidence is not None and worth is not None and grounding != "off":
        flags = (*check_grounding(text, evidence), *worth.flags)
        failures = dict.fromkeys(_FAILURE.get(flag.type, flag.type) for flag in flags)
        (hard if grounding == "strict" else soft).extend(failures)
    ease = readability(text, language)
    cta = has_call_to_action(text, language) if channel.wants_cta else None
    shown = flags if grounding == "flag" else ()
    score = score_variant(
        text, measure.units, limit, not over, len(missing), len(keywords),
        ease=ease, cta=cta, flags=len(shown),
        relevance=worth.relevance if worth else 1.0, coherence=worth.coherence if worth else 1.0,
    )  # fmt: skip
    fits = not over and "forbidden_character" not in hard
    variant = Variant(
        text=text, chars=measure.units, limit=limit, fits=fits, keywords_missing=missing,
        score=score, flags=shown, readability=ease, cta=cta,
    )  # fmt: skip
    return Checked(variant, tuple(hard), tuple(soft), flags)


def check_completion(
    raw: str,
    truncated: bool,
    channel: Channel,
    keywords: Sequence[str],
    max_chars: int | None,
    banned: Sequence[str] = (),
    *,
    evidence: Evidence | None = None,
    grounding: Grounding = "off",
    language: str = "en",
) -> Checked | None:
    """Clean one raw completion, shorten it to fit when a clause boundary allows, check it.
    None when nothing is left after cleaning. Under a grounding policy other than ``off`` a
    leading label or preamble is dropped and near misses of the brief's names are written as
    the brief writes them, before checking."""
    text = clean_text(raw, single_line=channel.single_line, truncated=truncated)
    if text and evidence is not None and grounding != "off":
        text = repair_names(drop_preamble(text), evidence)
    if not text:
        return None
    limit = channel.measure(text, max_chars).limit
    check = functools.partial(
        check_variant,
        channel=channel,
        keywords=keywords,
        max_chars=max_chars,
        banned=banned,
        evidence=evidence,
        grounding=grounding,
        language=language,
    )
    checked = check(shorten_to_fit(text, channel, limit, language))
    apart = [flag for flag in checked.flags if flag.type in _REPAIRABLE]
    if apart and not checked.acceptable:
        # Drop the ungrounded hashtag or sentence (an invented claim, an unsafe hashtag, a
        # preamble, an unfinished last sentence) when the rest still stands on its own.
        repaired = repair(checked.variant.text, apart)
        if repaired and (fixed := check(repaired)).acceptable:
            return fixed
    return checked
