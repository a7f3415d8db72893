"""Asset sets in one call: a Google Ads responsive search ad (headlines, descriptions, display
paths) or a Meta ad's text set, each part a brief of its channel, all parts generated in the
same rounds (shared forward passes) by the copywriter, then checked as a set
(copywriting/assets.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from copygen.auth import ANONYMOUS
from copygen.copywriting.assets import AssetChecks, meta_checks, rsa_checks, suggest_pins
from copygen.copywriting.ranking import deduplicate
from copygen.domain import CopyBrief, CopyResult, Usage, Variant, new_copy_id
from copygen.service.copywriter import Copywriter

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


def part(brief: CopyBrief, channel: str, count: int, **changes: object) -> CopyBrief:
    return dataclasses.replace(brief, channel=channel, variants=count, **changes)  # type: ignore[arg-type]


async def write_parts(
    copywriter: Copywriter, parts: Sequence[tuple[str, CopyBrief]], tenant: str
) -> tuple[dict[str, list[Variant]], list[CopyResult]]:
    """One brief per part (none for a part of 0 variants), all generated together."""
    live = [(name, brief) for name, brief in parts if brief.variants > 0]
    results = await copywriter.generate_many([brief for _, brief in live], tenant=tenant)
    found = {name: list(r.variants) for (name, _), r in zip(live, results, strict=True)}
    return {name: found.get(name, []) for name, _ in parts}, results


async def google_rsa(
    copywriter: Copywriter,
    brief: CopyBrief,
    headlines: int,
    descriptions: int,
    paths: tuple[str, str],
    tenant: str = ANONYMOUS,
) -> tuple[AssetSet, tuple[str, str]]:
    """The RSA's headlines and descriptions (and display paths where none were given: two
    generated path segments)."""
    verb = CTA_VERBS.get(brief.language.split("-")[0].lower())
    wanted = [
        ("headlines", part(brief, "google_ads_headline", headlines - (verb is not None))),
        # One headline that must get the reader to act: the action verb is its required
        # keyword (later rounds prime the answer with it, as with any keyword).
        ("cta", part(brief, "google_ads_headline", int(verb is not None), keywords=(verb or "",))),
        ("descriptions", part(brief, "google_ads_description", descriptions)),
        ("paths", part(brief, "google_ads_path", 0 if any(paths) else 2)),
    ]
    parts, results = await write_parts(copywriter, wanted, tenant)
    parts["headlines"] += deduplicate(parts.pop("cta"), keep=parts["headlines"])
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
    copywriter: Copywriter,
    brief: CopyBrief,
    primary_texts: int,
    headlines: int,
    descriptions: int,
    tenant: str = ANONYMOUS,
) -> AssetSet:
    wanted = [
        ("primary_texts", part(brief, "meta_primary_text", primary_texts)),
        ("headlines", part(brief, "meta_headline", headlines)),
        ("descriptions", part(brief, "meta_link_description", descriptions)),
    ]
    parts, results = await write_parts(copywriter, wanted, tenant)
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
