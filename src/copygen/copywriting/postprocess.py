"""Turn raw model completions into copy: clean, measure, check, de-duplicate, rank."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from copygen.copywriting.channels import Channel
from copygen.domain import Variant

_CHAT_TOKEN = re.compile(r"<\|[^|>]{1,40}\|>|</?s>")
_NUMBERING = re.compile(r"^\s*(?:\d{1,2}\s*[.):-]|[-*•#>]+)\s+")
_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:headline|subject(?: line)?|title|tagline|description|post|tweet|sms|"
    r"text|copy|answer|ad(?: copy)?|message|option|variant|path|subtitle)"
    r"\s*\d*\s*(?:\*\*)?\s*[:\-–]\s*",
    re.IGNORECASE,
)
_MARKDOWN = re.compile(r"\*\*|__|`")
_QUOTE_PAIRS = {'"': '"', "“": "”", "'": "'", "‘": "’", "«": "»", "„": "“"}
_SENTENCE_END = re.compile(r"[.!?…](?=[\"”'’)]?(?:\s|$))")
_WORD = re.compile(r"\w+", re.UNICODE)
_SUFFIXES = ("ing", "ed", "es", "s", "ly", "er")

NEAR_DUPLICATE_JACCARD = 0.8


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
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and ends[-1] < len(text.rstrip()):
        return text[: ends[-1]].strip()
    return text


def _stem(word: str) -> str:
    """A deliberately small stemmer: enough for "chargers"/"charger" and "running"/"run"."""
    word = word.casefold()
    for _ in range(2):
        for suffix in _SUFFIXES:
            if len(word) - len(suffix) >= 3 and word.endswith(suffix):
                word = word[: -len(suffix)]
                if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2]:
                    word = word[:-1]  # running → runn → run
                break
        else:
            break
    return word


def _words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFC", text).casefold())


def keywords_missing(text: str, keywords: Iterable[str]) -> tuple[str, ...]:
    """Keywords absent from ``text``, tolerant of case and simple inflection
    ("charger" matches "Chargers", "run" matches "running")."""
    stems = {_stem(word) for word in _words(text)}
    missing = []
    for keyword in keywords:
        wanted = [_stem(word) for word in _words(keyword)]
        if not wanted or not all(stem in stems for stem in wanted):
            missing.append(keyword)
    return tuple(missing)


def _normalised(text: str) -> str:
    return " ".join(_words(text))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def score_variant(
    text: str, units: int, limit: int | None, fits: bool, missing: int, keywords: int
) -> float:
    """0..1: length fit weighs most, then keyword coverage, then readability."""
    if limit is None:
        fit = 1.0
    elif fits:
        fit = 1.0 if units >= 0.3 * limit else 0.5 + units / (0.6 * limit)
    else:
        fit = max(0.0, 1.0 - (units - limit) / limit)
    coverage = 1.0 if keywords == 0 else (keywords - missing) / keywords
    words = _words(text)
    mean_len = sum(map(len, words)) / len(words) if words else 0.0
    readability = 1.0 if 3.0 <= mean_len <= 7.0 else 0.6
    return round(0.5 * fit + 0.35 * coverage + 0.15 * readability, 4)


def check_variant(
    text: str, channel: Channel, keywords: Sequence[str], max_chars: int | None
) -> Variant:
    measure = channel.measure(text, max_chars)
    limit = measure.limit
    fits = (limit is None or measure.units <= limit) and not any(
        ch in text for ch in channel.forbidden_chars
    )
    missing = keywords_missing(text, keywords)
    score = score_variant(text, measure.units, limit, fits, len(missing), len(keywords))
    return Variant(
        text=text, chars=measure.units, limit=limit, fits=fits,
        keywords_missing=missing, score=score,
    )  # fmt: skip


def deduplicate(variants: Iterable[Variant]) -> list[Variant]:
    """Drop exact duplicates (after normalisation) and near duplicates (word Jaccard >= 0.8),
    keeping the better-scored one."""
    kept: list[tuple[Variant, str, set[str]]] = []
    for variant in sorted(variants, key=lambda v: v.score, reverse=True):
        norm = _normalised(variant.text)
        words = set(norm.split())
        if not norm or any(
            norm == other or _jaccard(words, other_words) >= NEAR_DUPLICATE_JACCARD
            for _, other, other_words in kept
        ):
            continue
        kept.append((variant, norm, words))
    return [variant for variant, _, _ in kept]


def postprocess(
    completions: Iterable[tuple[str, bool]],
    channel: Channel,
    keywords: Sequence[str],
    max_chars: int | None,
) -> list[Variant]:
    """Clean, check, de-duplicate and rank; ``completions`` are (raw text, truncated) pairs."""
    checked = []
    for raw, truncated in completions:
        text = clean_text(raw, single_line=channel.single_line, truncated=truncated)
        if text:
            checked.append(check_variant(text, channel, keywords, max_chars))
    return deduplicate(checked)
