"""Wire models: what clients send and receive. Validation errors never echo input."""

from __future__ import annotations

import json
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.frameworks import FRAMEWORKS, TONES
from copygen.copywriting.prompts import FIELD_CAPS, as_data
from copygen.domain import CachePolicy, CopyBrief, CopyResult, Grounding, Variant

Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Fact = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_FACTS = 20


class CopyRequest(BaseModel):
    """A brief. Unknown fields are rejected so typos do not silently change nothing."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    product: str = Field(min_length=1, max_length=200, description="What is being sold.")
    description: str = Field("", max_length=1000)
    audience: str = Field("", max_length=200)
    tone: str = Field(
        "friendly",
        min_length=1,
        max_length=FIELD_CAPS["tone"],
        description='A preset of GET /v1/tones, or your own words ("quirky but professional").',
    )
    channel: str = Field("google_ads_headline", description="One of GET /v1/channels.")
    framework: str | None = Field(None, description="One of GET /v1/frameworks.")
    keywords: list[Keyword] = Field(default_factory=list, max_length=10)
    banned_words: list[Keyword] = Field(default_factory=list, max_length=50)
    language: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    variants: int = Field(3, ge=1, le=10)
    max_chars: int | None = Field(None, ge=5, le=5000)
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Default: the channel's (GET /v1/channels)."
    )
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0, le=1000)
    repetition_penalty: float = Field(1.1, ge=1.0, le=2.0)
    max_new_tokens: int | None = Field(None, ge=1, le=512)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    cache: CachePolicy = CachePolicy.USE
    stream: bool = False
    facts: list[Fact] = Field(
        default_factory=list,
        max_length=MAX_FACTS,
        description="Statements the copy may use; the only claims it may make.",
    )
    grounding: Grounding | None = Field(
        None,
        description="Unsupported brands, numbers and claims: strict (never returned), flag "
        "(returned with flags) or off; default: the server's COPYGEN_GROUNDING.",
    )

    brand: str | None = Field(
        None,
        min_length=1,
        max_length=40,
        description="A stored brand's id (POST /v1/brands): its voice, terms, facts and "
        "examples apply, and its tone and audience where the brief sets none.",
    )

    @field_validator("tone")
    @classmethod
    def _tone(cls, value: str) -> str:
        return clean_tone(value)

    @field_validator("brand")
    @classmethod
    def _brand_id(cls, value: str | None) -> str | None:
        return no_nul(value)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str) -> str:
        return known_channel(value)

    @field_validator("framework")
    @classmethod
    def _known_framework(cls, value: str | None) -> str | None:
        return None if value is None else _known(value, FRAMEWORKS, "framework", "/v1/frameworks")

    def to_brief(self) -> CopyBrief:
        """The domain brief, with text in Unicode NFC so that equivalent spellings of the same
        text make the same prompt (and share a cache entry)."""
        # CopyRequest's own fields only: subclasses (the asset routes) add fields of their own.
        own = set(CopyRequest.model_fields) - {
            "stream",
            "keywords",
            "banned_words",
            "facts",
            "brand",
        }
        data = self.model_dump(include=own)
        for name in ("product", "description", "audience", "tone"):
            data[name] = unicodedata.normalize("NFC", data[name])
        return CopyBrief(
            **data,
            keywords=tuple(unicodedata.normalize("NFC", k) for k in self.keywords),
            banned_words=tuple(unicodedata.normalize("NFC", w) for w in self.banned_words),
            facts=tuple(unicodedata.normalize("NFC", f) for f in self.facts),
        )


def clean_tone(value: str) -> str:
    """A preset id (any case) or free text, made safe to embed."""
    if value.lower() in TONES:
        return value.lower()
    cleaned = as_data(value, FIELD_CAPS["tone"])
    if not cleaned:
        raise ValueError("tone has no printable text")
    return cleaned


def no_nul(value: str | None) -> str | None:
    """Refuse text holding NUL. PostgreSQL refuses the character in text, so an id or a cursor
    holding one reached the store and failed as 503 store_unavailable; no id copygen makes
    has one."""
    if value is not None and "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


#: A stored record's id, or a page cursor, as a caller sends it in a path or a query string:
#: at most 40 characters (no id is longer), never NUL.
RecordId = Annotated[str, StringConstraints(max_length=40), AfterValidator(no_nul)]


def known_channel(value: str) -> str:
    return _known(value, CHANNELS, "channel", "/v1/channels")


def _known(value: str, table: Mapping[str, object], what: str, route: str) -> str:
    key = value.lower()
    if key not in table:
        raise ValueError(f"unknown {what}; GET {route} lists the supported ones")
    return key


class FlagOut(BaseModel):
    type: Literal[
        "unsupported_entity", "unsupported_number", "risky_claim",
        # the worth checks (copywriting/worth.py)
        "off_topic", "misspelt_name", "fragment", "unsafe", "invented_claim", "incoherent",
        "wrong_language",
    ]  # fmt: skip
    text: str = Field(
        description="The words of the variant the flag is about (for off_topic and "
        "incoherent text the whole variant; for wrong_language the language it is in)."
    )


class ReadabilityOut(BaseModel):
    ease: float = Field(description="Flesch reading ease or the language's adaptation.")
    grade: float | None = Field(description="Flesch-Kincaid grade (English only).")


class ChecksOut(BaseModel):
    """Why a variant scored what it did (docs/quality.md, "Score")."""

    fits: bool
    chars: int
    limit: int | None
    keywords_missing: list[str]
    flags: list[FlagOut] = Field(description="What the grounding policy let through.")
    readability: ReadabilityOut | None
    cta: bool | None = Field(description="A call to action is present (null: not asked for).")
    relevance: float | None = Field(
        description="How much the brief raises the model's likelihood of the text, in nats "
        "per token (null unless COPYGEN_RELEVANCE is on)."
    )
    voice: float | None = Field(
        None,
        description="How the brief's brand moved it in the ranking: up for preferred terms, "
        "down for phrasing like copy its users rated down (null: no brand).",
    )
    likelihood: float | None = Field(
        None,
        description="The mean log-probability per token the model gave the text as it wrote "
        "it, in nats; it ranks the variants (null: not known, as from a remote engine).",
    )


class VariantOut(BaseModel):
    text: str
    chars: int = Field(description="Length under the channel's counting rule.")
    limit: int | None = Field(description="The channel's limit (tightened by max_chars).")
    fits: bool
    keywords_missing: list[str]
    score: float
    checks: ChecksOut


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class CopyResponse(BaseModel):
    id: str
    model: str
    channel: str
    variants: list[VariantOut]
    requested: int = Field(description="How many variants the brief asked for.")
    delivered: int = Field(description="How many distinct variants came back.")
    complete: bool = Field(description="False when fewer variants passed than were asked for.")
    rounds: int = Field(description="Generation rounds used (failing slots are regenerated).")
    cached: bool
    cache_tier: Literal["l1", "l2"] | None
    usage: UsageOut
    timings_ms: dict[str, float]

    @classmethod
    def from_result(cls, result: CopyResult) -> CopyResponse:
        return cls.model_validate(copy_document(result))


def copy_document(result: CopyResult) -> dict[str, Any]:
    """The response document for ``result``: the one mapping behind both ``CopyResponse``
    (validated, for streams and batches) and ``copy_response`` (serialised directly)."""
    return {**_head(result), "variants": [_variant(v) for v in result.variants]}


def _head(result: CopyResult) -> dict[str, Any]:
    """Everything of the document but the variants."""
    variants = result.variants
    return {
        "id": result.id,
        "model": result.model,
        "channel": result.channel,
        "requested": result.requested,
        "delivered": len(variants),
        "complete": len(variants) >= result.requested,
        "rounds": result.rounds,
        "cached": result.cached,
        "cache_tier": result.cache_tier,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
        },
        "timings_ms": result.timings_ms,
    }


def _variant(v: Variant) -> dict[str, Any]:
    ease = v.readability
    return {
        "text": v.text,
        "chars": v.chars,
        "limit": v.limit,
        "fits": v.fits,
        "keywords_missing": list(v.keywords_missing),
        "score": v.score,
        "checks": {
            "fits": v.fits,
            "chars": v.chars,
            "limit": v.limit,
            "keywords_missing": list(v.keywords_missing),
            "flags": [{"type": flag.type, "text": flag.text} for flag in v.flags],
            "readability": None if ease is None else {"ease": ease.ease, "grade": ease.grade},
            "cta": v.cta,
            "relevance": v.relevance,
            "voice": v.voice,
            "likelihood": v.likelihood,
        },
    }


def _dumps(document: object) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _VariantsText:
    """The JSON text of a result's variants, kept per variants list: a cache hit answers with
    the stored list again (under a new id and timings), and the variants, each with its
    checks, are most of the document (serialising them was a fifth of a hit's cost here).
    Lists of variants are never changed after a result is made."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._texts: OrderedDict[int, tuple[list[Variant], str]] = OrderedDict()

    def __call__(self, variants: list[Variant]) -> str:
        key = id(variants)
        known = self._texts.get(key)
        if known is not None and known[0] is variants:
            self._texts.move_to_end(key)
            return known[1]
        text = _dumps([_variant(v) for v in variants])
        self._texts[key] = (variants, text)  # holding the list keeps its id from being reused
        if len(self._texts) > self._size:
            self._texts.popitem(last=False)
        return text


_variants_text = _VariantsText()


def copy_response(result: CopyResult) -> Response:
    """``copy_document(result)`` as JSON without a pydantic round trip: this is the whole
    cost of a cache hit besides the framework, and validating our own typed values again
    (twice, with FastAPI's response_model) cost more than the lookup itself. A test checks
    the document against ``CopyResponse``."""
    head = _dumps(_head(result))
    content = f'{head[:-1]},"variants":{_variants_text(result.variants)}}}'
    return Response(
        content.encode(),
        media_type="application/json",
        headers={"server-timing": server_timing(result.timings_ms)},
    )


def server_timing(timings_ms: Mapping[str, float]) -> str:
    """``Server-Timing`` for browsers' devtools: ``queue;dur=1.2, generation;dur=840.5, ...``"""
    return ", ".join(f"{name};dur={value:g}" for name, value in timings_ms.items())


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ChannelOut(BaseModel):
    id: str
    name: str
    limit: int | None
    limit_kind: Literal["hard", "soft", "none"]
    counting: str
    recommended: int | None
    note: str
    temperature: float = Field(description="The sampling temperature a brief gets by default.")


class ToneOut(BaseModel):
    id: str
    description: str


class TonesOut(BaseModel):
    tones: list[ToneOut] = Field(description="Presets, each with a tuned prompt description.")
    free_text: bool = Field(description="Any other text is accepted as a tone too.")
    max_length: int = Field(description="The longest free-text tone, in characters.")


class FrameworkOut(BaseModel):
    id: str
    name: str
    version: int
    stages: list[str]
    description: str


MAX_BATCH_ITEMS = 50


class CopyBatchRequest(BaseModel):
    """Up to 50 briefs. Items are validated one by one, so one bad item fails only itself."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, object]] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class CopyBatchItem(BaseModel):
    index: int
    result: CopyResponse | None = None
    error: ErrorDetail | None = None


class CopyBatchResponse(BaseModel):
    results: list[CopyBatchItem]
    succeeded: int
    failed: int
