"""Cache keys: a hash of the canonical form of a brief and everything else that shapes its copy.

Equivalent requests share a key: field order does not matter (the key is built from the
validated brief), defaults sent explicitly equal defaults omitted, 0.7 equals 0.70, strings are
compared in Unicode NFC, keyword lists are sets. Anything that can change the copy changes it:
the tenant, the model and its revision, the prompt template version, every brief field and
generation parameter, and the service's own copy policy (brand-safety list, rounds).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import unicodedata
from dataclasses import dataclass

from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.prompts import TEMPLATE_VERSION
from copygen.domain import CopyBrief

#: Bump when the cached value's shape or the key's canonical form changes.
CACHE_SCHEMA_VERSION = 2
KEY_PREFIX = "copygen:copy"


@dataclass(frozen=True, slots=True)
class KeyContext:
    """What besides the brief decides the copy."""

    tenant: str
    model: str
    revision: str
    policy: str = ""


@functools.lru_cache(maxsize=64)
def model_tag(model: str) -> str:
    """A short stable tag for a model id, so entries can be invalidated per model."""
    return hashlib.sha256(model.encode()).hexdigest()[:12]


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def _number(value: float) -> str:
    # repr of the float: 0.7 and 0.70 parse to the same float; 1 and 1.0 become "1.0".
    return repr(float(value))


def canonical_brief(brief: CopyBrief) -> dict[str, object]:
    """The brief's fields in one canonical form (without the cache policy itself)."""
    channel = CHANNELS[brief.channel]
    brand = brief.brand
    return {
        "product": _nfc(brief.product),
        "description": _nfc(brief.description),
        "audience": _nfc(brief.audience),
        "tone": _nfc(brief.tone).casefold(),
        "channel": channel.id,
        "framework": brief.framework.lower() if brief.framework else None,
        "keywords": sorted({_nfc(k) for k in brief.keywords}),
        "banned_words": sorted({_nfc(w).lower() for w in brief.banned_words}),
        "language": brief.language.lower(),
        "variants": brief.variants,
        "max_chars": brief.max_chars,
        # A brief naming its channel's default temperature gets the same key as one naming none.
        "temperature": _number(
            channel.temperature if brief.temperature is None else brief.temperature
        ),
        "top_p": _number(brief.top_p),
        "top_k": brief.top_k,
        "repetition_penalty": _number(brief.repetition_penalty),
        "max_new_tokens": brief.max_new_tokens or channel.max_new_tokens,
        "seed": brief.seed,
        "facts": [_nfc(fact) for fact in brief.facts],  # in order, as the prompt lists them
        "grounding": brief.grounding,
        # A brand's id, version and the feedback it learned from: editing it (or rating its
        # copy down) changes the key, so no stale copy is served. Absent without a brand, so
        # the keys of briefs without one stay what they were.
        **({"brand": [brand.id, brand.version, brand.learned]} if brand else {}),
        **({"prime_keywords": True} if brief.prime_keywords else {}),
    }


@functools.lru_cache(maxsize=4096)  # hot briefs come back again and again
def copy_cache_key(brief: CopyBrief, context: KeyContext) -> str:
    """``copygen:copy:v1:<model tag>:<channel>:<sha256>``. The model tag and channel are in
    clear so entries can be invalidated by model or channel; nothing of the brief is."""
    # Every dict here is built in a fixed order, so the JSON text is canonical as it stands.
    blob = _context_text(context) + json.dumps(
        canonical_brief(brief), ensure_ascii=False, separators=(",", ":")
    )
    digest = hashlib.sha256(blob.encode()).hexdigest()
    tag = model_tag(context.model)
    return f"{KEY_PREFIX}:v{CACHE_SCHEMA_VERSION}:{tag}:{brief.channel}:{digest}"


@functools.lru_cache(maxsize=1024)
def _context_text(context: KeyContext) -> str:
    return json.dumps(
        [CACHE_SCHEMA_VERSION, TEMPLATE_VERSION, *dataclasses.astuple(context)],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def key_pattern(*, model: str | None = None, channel: str | None = None) -> str:
    """A glob over copy keys, optionally narrowed to one model and/or one channel."""
    tag = model_tag(model) if model else "*"
    return f"{KEY_PREFIX}:v{CACHE_SCHEMA_VERSION}:{tag}:{channel or '*'}:*"
