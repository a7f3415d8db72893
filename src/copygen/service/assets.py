"""Asset sets in one call: a Google Ads responsive search ad (headlines, descriptions, display
paths) or a Meta ad's text set, each part a brief of its channel, all parts generated in the
same rounds (shared forward passes) by the copy workflow, then checked as a set
(copywriting/assets.py)."""

from __future__ import annotations

import dataclasses
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from copygen.auth import ANONYMOUS
from copygen.cache.codec import variant_from_dict
from copygen.copywriting.assets import AssetChecks, meta_checks, rsa_checks, suggest_pins
from copygen.copywriting.ranking import deduplicate
from copygen.deadline import Deadline
from copygen.domain import CachePolicy, CopyBrief, CopyResult, Usage, Variant, new_copy_id
from copygen.errors import DeadlineExceeded
from copygen.service.workflow import CopyWorkflow

#: Headlines that open with a keyword (the format wants at least three), and how many
#: headlines one part asks for (each part samples twice as many rows per round).
KEYWORD_HEADLINES = 4
HEADLINES_PER_PART = 4
#: Extra rounds for headlines the parts did not deliver distinct (each one more generation).
TOP_UPS = 2

#: The verb a call-to-action headline must use, per language (copywriting/readability.py's
#: call-to-action patterns know each); other languages get no dedicated headline.
CTA_VERBS = {"en": "Get", "de": "Jetzt", "fr": "Découvrez"}


@dataclass(frozen=True, slots=True)
class AssetSet:
    """One set: its parts (name → ranked variants), the checks, and per-headline pins."""

    id: str
    model: str
    parts: dict[str, list[Variant]]
    checks: AssetChecks
    pins: list[int | None]
    usage: Usage
    timings_ms: dict[str, float]
    cached: bool


def asset_to_dict(made: AssetSet) -> dict[str, Any]:
    """A set as JSON-ready data (a job's stored result)."""
    data = dataclasses.asdict(made)
    data["checks"]["failures"] = list(made.checks.failures)
    return data


def asset_from_dict(data: dict[str, Any]) -> AssetSet:
    checks = dict(data["checks"])
    checks["failures"] = tuple(checks["failures"])
    return AssetSet(
        id=data["id"], model=data["model"],
        parts={name: [variant_from_dict(v) for v in variants]
               for name, variants in data["parts"].items()},
        checks=AssetChecks(**checks), pins=list(data["pins"]), usage=Usage(**data["usage"]),
        timings_ms=dict(data["timings_ms"]), cached=bool(data["cached"]),
    )  # fmt: skip


def _seed_base(brief: CopyBrief) -> int:
    """Where the headline parts' seeds start (each part needs its own, or identical parts
    would share one generation): the brief's seed; without one, a hash of the brief when the
    cache is used (the same brief, the same set, as the cache would answer anyway), else
    random (``refresh``, ``bypass``: new copy)."""
    if brief.seed is not None:
        return brief.seed
    if brief.cache is CachePolicy.USE:
        return zlib.crc32(repr(brief).encode())
    return secrets.randbits(62)


def _split(total: int, size: int) -> list[int]:
    """``total`` in parts of at most ``size``: 10, 4 → [4, 4, 2]."""
    return [min(size, total - start) for start in range(0, max(0, total), size)]


def part(brief: CopyBrief, channel: str, count: int, **changes: object) -> CopyBrief:
    return dataclasses.replace(brief, channel=channel, variants=count, **changes)  # type: ignore[arg-type]


async def write_parts(
    workflow: CopyWorkflow,
    parts: Sequence[tuple[str, CopyBrief]],
    tenant: str,
    deadline: Deadline | None = None,
) -> tuple[dict[str, list[Variant]], list[CopyResult]]:
    """One brief per part (none for a part of 0 variants), all generated together."""
    live = [(name, brief) for name, brief in parts if brief.variants > 0]
    results = await workflow.generate_many([b for _, b in live], deadline, tenant=tenant)
    found = {name: list(r.variants) for (name, _), r in zip(live, results, strict=True)}
    return {name: found.get(name, []) for name, _ in parts}, results


async def google_rsa(
    workflow: CopyWorkflow,
    brief: CopyBrief,
    headlines: int,
    descriptions: int,
    paths: tuple[str, str],
    tenant: str = ANONYMOUS,
    deadline: Deadline | None = None,
) -> tuple[AssetSet, tuple[str, str]]:
    """The RSA's headlines and descriptions (and display paths where none were given: two
    generated path segments)."""
    verb = CTA_VERBS.get(brief.language.split("-")[0].lower())
    keyworded = min(KEYWORD_HEADLINES, headlines - 1) if brief.keywords else 0
    cta = int(verb is not None)
    base = _seed_base(brief)
    wanted = [
        # Headlines that must open with a keyword (the rule of at least three), one that must
        # open with an action verb (a call to action), and the rest in parts of a few each:
        # every part samples its own rows, so more candidates are tried per round.
        ("keyword", part(brief, "google_ads_headline", keyworded, prime_keywords=True)),
        ("cta", part(brief, "google_ads_headline", cta, keywords=(verb or "",),
                     prime_keywords=True)),
        *(
            (f"headlines{i}", part(brief, "google_ads_headline", count,
                                   seed=(base + 7919 * (i + 1)) % 2**63))
            for i, count in enumerate(_split(headlines - keyworded - cta, HEADLINES_PER_PART))
        ),
        ("descriptions", part(brief, "google_ads_description", descriptions)),
        ("paths", part(brief, "google_ads_path", 0 if any(paths) else 2)),
    ]  # fmt: skip
    parts, results = await write_parts(workflow, wanted, tenant, deadline)
    chosen: list[Variant] = []
    for name in [name for name, _ in wanted if name.startswith(("keyword", "cta", "headlines"))]:
        chosen += deduplicate(parts.pop(name), keep=chosen)
    for attempt in range(TOP_UPS):  # parts can say the same thing: ask again for what is short
        if (short := headlines - len(chosen)) <= 0:
            break
        extra = part(
            brief, "google_ads_headline", short, seed=(base - 7919 * (attempt + 1)) % 2**63
        )
        try:
            [more] = await workflow.generate_many([extra], deadline, tenant=tenant)
        except DeadlineExceeded:  # the set is answered with what it has; checks say what is short
            break
        results.append(more)
        chosen += deduplicate(more.variants, keep=chosen)[:short]
    parts = {"headlines": chosen, **parts}
    if not any(paths):
        found = [v.text for v in parts["paths"]] + ["", ""]
        paths = (found[0], found[1])
    # A headline that only repeats a display path adds nothing: Google shows the path anyway.
    shown = {p.casefold() for p in paths if p}
    parts["headlines"] = [v for v in parts["headlines"] if v.text.casefold() not in shown]
    texts = {name: [v.text for v in variants] for name, variants in parts.items()}
    checks = rsa_checks(texts["headlines"], texts["descriptions"], brief.keywords, paths,
                        brief.language)  # fmt: skip
    brand = brief.brand.profile.name if brief.brand else None
    pins = suggest_pins(texts["headlines"], brief.keywords, brand)
    return _set(parts, checks, pins, results), paths


async def meta_ad(
    workflow: CopyWorkflow,
    brief: CopyBrief,
    primary_texts: int,
    headlines: int,
    descriptions: int,
    tenant: str = ANONYMOUS,
    deadline: Deadline | None = None,
) -> AssetSet:
    wanted = [
        ("primary_texts", part(brief, "meta_primary_text", primary_texts)),
        ("headlines", part(brief, "meta_headline", headlines)),
        ("descriptions", part(brief, "meta_link_description", descriptions)),
    ]
    parts, results = await write_parts(workflow, wanted, tenant, deadline)
    texts = {name: [v.text for v in variants] for name, variants in parts.items()}
    checks = meta_checks(texts["primary_texts"], texts["headlines"], texts["descriptions"])
    return _set(parts, checks, [None] * len(parts["headlines"]), results)


def _set(
    parts: dict[str, list[Variant]],
    checks: AssetChecks,
    pins: list[int | None],
    results: Sequence[CopyResult],
) -> AssetSet:
    timings: dict[str, float] = {}
    for result in results:
        for key, value in result.timings_ms.items():
            timings[key] = max(timings.get(key, 0.0), value)  # the parts ran together
    usage = Usage(
        sum(r.usage.prompt_tokens for r in results),
        sum(r.usage.completion_tokens for r in results),
    )
    model = results[0].model if results else ""
    cached = bool(results) and all(r.cached for r in results)
    return AssetSet(new_copy_id(), model, parts, checks, pins, usage, timings, cached)
