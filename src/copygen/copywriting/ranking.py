"""Choose among checked candidates: drop duplicates and near duplicates, rank by merit (the
score, relevance, the brand's adjustment) with variety, select what a brief returns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from copygen.copywriting.postprocess import Checked
from copygen.copywriting.text import words
from copygen.domain import Variant

NEAR_DUPLICATE_JACCARD = 0.8


def _normalised(text: str) -> str:
    return " ".join(words(text))


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def word_overlap(a: str, b: str) -> float:
    """Jaccard similarity of two texts' normalised words (0: nothing shared, 1: same words)."""
    return _jaccard(set(_normalised(a).split()), set(_normalised(b).split()))


def deduplicate(variants: Iterable[Variant], keep: Sequence[Variant] = ()) -> list[Variant]:
    """Drop exact duplicates (after normalisation) and near duplicates (word Jaccard >= 0.8),
    keeping the better-scored one. Variants in ``keep`` were chosen already: the result never
    repeats them and nothing close to them gets in."""
    kept: list[tuple[str, set[str]]] = []
    for variant in keep:
        norm = _normalised(variant.text)
        kept.append((norm, set(norm.split())))
    result: list[Variant] = []
    for variant in sorted(variants, key=merit, reverse=True):
        norm = _normalised(variant.text)
        own = set(norm.split())
        if not norm or any(
            norm == other or _jaccard(own, other_words) >= NEAR_DUPLICATE_JACCARD
            for other, other_words in kept
        ):
            continue
        kept.append((norm, own))
        result.append(variant)
    return result


VARIETY_WEIGHT = 0.15
#: How much a nat per token of relevance moves a variant in the ranking (clipped at ±10 nats).
#: Measured relevance outweighs the score: among variants that pass every rule, the editors'
#: usable share of the top 3 of 6 was 46% by relevance, 33% by the score, 38% at random, and
#: 39-40% with relevance weighted 0.1-1.0 but clipped at ±2 (docs/quality.md, "Selection").
RELEVANCE_WEIGHT = 1.0
RELEVANCE_CLIP = 10.0
#: How much a nat per token of the likelihood the model gave a text as it wrote it moves the
#: variant (clipped at ±10 nats). It chooses as well as relevance does, at no cost: the top 3
#: of 6 variants that pass every rule were 43% usable by it, 43% by relevance, 34% at random
#: (docs/quality.md, "Selection").
LIKELIHOOD_WEIGHT = 1.0


def merit(variant: Variant) -> float:
    """What ranking orders by: the score, plus the relevance and the likelihood where they
    are known, plus the brand's adjustment (copywriting/brand.py) where the brief has a
    brand."""
    merit = variant.score + (variant.voice or 0.0)
    if variant.relevance is not None:
        merit += RELEVANCE_WEIGHT * _clip(variant.relevance)
    if variant.likelihood is not None:
        merit += LIKELIHOOD_WEIGHT * _clip(variant.likelihood)
    return merit


def _clip(nats: float) -> float:
    return max(-RELEVANCE_CLIP, min(RELEVANCE_CLIP, nats))


def rank(variants: Sequence[Variant]) -> list[Variant]:
    """Best first: greedily pick the highest merit, discounted by word overlap with the
    variants already picked, so the top of the list is not three takes on one idea."""
    remaining = list(variants)
    picked: list[Variant] = []
    picked_words: list[set[str]] = []
    while remaining:

        def adjusted(v: Variant) -> float:
            own = set(words(v.text))
            overlap = max((_jaccard(own, other) for other in picked_words), default=0.0)
            return merit(v) - VARIETY_WEIGHT * overlap

        best = max(remaining, key=adjusted)
        remaining.remove(best)
        picked.append(best)
        picked_words.append(set(words(best.text)))
    return picked


def select(checked: Iterable[Checked], wanted: int) -> list[Variant]:
    """Up to ``wanted`` distinct variants, best first: perfect ones, then ones that only miss
    soft rules; never one that breaks a hard rule."""
    pool = [c for c in checked if c.acceptable]
    chosen = deduplicate(c.variant for c in pool if c.perfect)[:wanted]
    if len(chosen) < wanted:
        rest = deduplicate((c.variant for c in pool if not c.perfect), keep=chosen)
        chosen += rest[: wanted - len(chosen)]
    return rank(chosen)
