"""Plain domain objects shared by the engine, the copywriting rules and the API. No I/O."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
#: What happens to a candidate that states a brand, number or claim the brief does not support:
#: ``strict`` never returns it, ``flag`` returns it with flags, ``off`` does not look.
Grounding = Literal["strict", "flag", "off"]


class CachePolicy(StrEnum):
    USE = "use"
    REFRESH = "refresh"
    BYPASS = "bypass"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How tokens are drawn. ``temperature == 0`` means greedy decoding."""

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1
    max_new_tokens: int = 64
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class BrandExample:
    """Copy that worked for a brand, on one channel; ``source``: manual, feedback or import."""

    channel: str
    text: str
    source: str = "manual"


@dataclass(frozen=True, slots=True)
class BrandProfile:
    """What a brand's owner writes: the voice and terms for the prompt, the facts that extend
    what grounding allows, examples of copy that worked, and whether up-rated copy becomes
    one (``auto_learn``)."""

    name: str
    voice: str = ""
    tone: str = ""
    audience: str = ""
    preferred_terms: tuple[str, ...] = ()
    forbidden_terms: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()
    examples: tuple[BrandExample, ...] = ()
    auto_learn: bool = False


@dataclass(frozen=True, slots=True)
class BrandVoice:
    """What a brief takes from a stored brand: its profile at one version, and what feedback
    taught (``avoid``: recent down-rated texts; ``learned``: the last feedback applied, part
    of the cache key with the version, so neither an edit nor new feedback serves stale
    copy)."""

    id: str
    version: int
    profile: BrandProfile
    avoid: tuple[str, ...] = ()
    learned: int = 0


@dataclass(frozen=True, slots=True)
class CopyBrief:
    """What a marketer asks for. Field values are data, never instructions to the model."""

    product: str
    description: str = ""
    audience: str = ""
    tone: str = "friendly"
    channel: str = "google_ads_headline"
    framework: str | None = None
    keywords: tuple[str, ...] = ()
    banned_words: tuple[str, ...] = ()
    language: str = "en"
    variants: int = 3
    max_chars: int | None = None
    #: None: the channel's default (copywriting/channels.py).
    temperature: float | None = None
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1
    max_new_tokens: int | None = None
    seed: int | None = None
    cache: CachePolicy = CachePolicy.USE
    #: Statements the copy may use (and the only claims it may make).
    facts: tuple[str, ...] = ()
    #: None: the server's default (COPYGEN_GROUNDING).
    grounding: Grounding | None = None
    #: The stored brand the brief names, resolved by the API (None: no brand).
    brand: BrandVoice | None = None
    #: Start every answer with a required keyword from the first round on (asset parts that
    #: must carry one; briefs from the API prime only later rounds).
    prime_keywords: bool = False


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One prompt for the runner, sampled ``n`` times.

    ``messages`` go through the model's chat template; ``prompt`` (when set) is used verbatim
    instead. ``prefix`` starts the model's answer (response priming); completions include it.
    Generation stops at the end-of-sequence token, at ``max_new_tokens`` or at any ``stop``;
    with ``single_line``, also at the first line break that ends a line of text (one with a
    letter, not ending in ":", "-" or "–", which label the next line), the break not included;
    with ``max_chars``, once the text (prefix included) is longer than that (finish "length"):
    a row past its channel's limit is cut or rejected anyway, so decoding it further is waste.
    ``avoid_words`` and ``avoid_chars`` are never sampled by the in-process engine (each word
    where it is one token, any token holding one of the characters): what the checks would
    reject anyway (copywriting/steering.py). A remote engine's token ids are unknown, so it
    is not told. With ``logprobs`` the in-process engine reports each completion's likelihood
    (``Completion.logprob``); its rows draw every token themselves (no speculation).
    """

    messages: tuple[ChatMessage, ...]
    sampling: SamplingParams
    n: int = 1
    prefix: str = ""
    prompt: str | None = None
    stop: tuple[str, ...] = ()
    single_line: bool = False
    max_chars: int | None = None
    avoid_words: tuple[str, ...] = ()
    avoid_chars: str = ""
    #: The caller will send the same messages again with another ``prefix`` (a brief's next
    #: round): the in-process engine keeps the KV of the last message for it.
    again: bool = False
    logprobs: bool = False


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """How likely the model finds ``text`` as the answer to ``messages`` (chat-templated)."""

    messages: tuple[ChatMessage, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    completion_tokens: int
    finish_reason: Literal["stop", "length"]
    #: The mean log-probability per token (nats) the model gave the tokens it wrote, as it
    #: drew them (after steering and the repetition penalty, before temperature); None when
    #: not asked for (``GenerationRequest.logprobs``) or not known (a remote engine).
    logprob: float | None = None


@dataclass(frozen=True, slots=True)
class Generation:
    """The runner's answer to one GenerationRequest: ``n`` completions of one prompt."""

    prompt_tokens: int
    completions: tuple[Completion, ...]


@dataclass(frozen=True, slots=True)
class Flag:
    """Something wrong with a variant, let through by the policy: ``type`` is a grounding
    check's (unsupported_entity, unsupported_number, risky_claim) or a worth check's
    (copywriting/worth.py: off_topic, misspelt_name, fragment, unsafe, invented_claim,
    incoherent, wrong_language); ``text`` the words it is about."""

    type: str
    text: str


@dataclass(frozen=True, slots=True)
class Readability:
    """Reading ease (Flesch or the language's adaptation: higher is easier) and, where the
    language has a formula for it, a school grade."""

    ease: float
    grade: float | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    text: str
    chars: int
    limit: int | None
    fits: bool
    keywords_missing: tuple[str, ...]
    score: float
    flags: tuple[Flag, ...] = ()
    readability: Readability | None = None
    #: Whether a call to action is present (None: the channel does not ask for one).
    cta: bool | None = None
    #: How much the brief raises the model's likelihood of the text (None: not measured).
    relevance: float | None = None
    #: How the brief's brand moves it in the ranking: preferred terms up, phrasing like
    #: down-rated copy down (None: no brand).
    voice: float | None = None
    #: The mean log-probability per token the model gave the text as it wrote it, after the
    #: brief's prompt (Completion.logprob; None: not known, as from a remote engine).
    likelihood: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class CopyResult:
    id: str
    model: str
    channel: str
    variants: list[Variant]
    requested: int
    rounds: int = 1
    cached: bool = False
    cache_tier: Literal["l1", "l2"] | None = None
    usage: Usage = field(default_factory=Usage)
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: The runner jobs (one per round) that produced it, for logs; empty when served.
    jobs: tuple[int, ...] = ()


def new_copy_id() -> str:
    """The one id scheme of CopyResult: ``copy-`` and 32 random hex digits (uuid4's randomness
    without building a UUID)."""
    return f"copy-{os.urandom(16).hex()}"


#: Examples a brand keeps (the API's and the store's bound).
MAX_EXAMPLES = 50


@dataclass(frozen=True, slots=True)
class Brand:
    """A stored brand: its profile at ``version`` (the store keeps it per tenant)."""

    id: str
    version: int
    profile: BrandProfile
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    """A stored background job (a batch of briefs or one asset set) as its owner sees it."""

    id: str
    tenant: str
    kind: str
    request: list[dict[str, Any]]
    status: str
    total: int
    done: int
    failed: int
    webhook_url: str | None
    created_at: datetime
    finished_at: datetime | None
