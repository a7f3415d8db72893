"""`make eval`'s brand run: the same briefs with and without a stored brand (voice, preferred
and forbidden terms, facts, 15 examples: 5 short, 5 medium, 5 long) — keyword coverage,
grounding flags, delivery, distinct-2, and voice adherence (the share of variants that use at
least one preferred term and no forbidden term)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from copygen.copywriting.brand import uses_voice
from copygen.copywriting.grounding import Evidence, check_grounding
from copygen.copywriting.postprocess import keywords_missing
from copygen.domain import BrandExample, BrandProfile, BrandVoice, CachePolicy, CopyBrief
from copygen.service.runtime import Runtime

#: Channels whose examples stand for each length; prompt_examples picks the channel's own
#: first, then the nearest in length, so every channel gets examples of about its size.
LENGTHS = ("google_ads_headline", "google_ads_description", "meta_primary_text")

#: Per product of eval.PRODUCTS (same order): the brand, its terms, a fact, and five examples
#: per length, each within the product's facts (no figure or claim the brief lacks).
BRANDS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...], str, tuple[str, ...]]] = {
    "Solar-powered phone charger": (
        "Helio",
        "Calm, outdoorsy, practical; short sentences",
        ("sunlight", "trail"),
        ("cheap", "revolutionary"),
        "Helio makes solar gear for the outdoors",
        (
            "Power from pure sunlight",
            "Charge on the trail",
            "Sunlight in your pack",
            "Your phone, sun-charged",
            "Light pack, full battery",
            "Two hours of sunlight charges your phone. Helio weighs just 280 g.",
            "Waterproof to 1 m and light on the trail: Helio keeps your phone alive.",
            "Hike further. Helio turns sunlight into a charged phone in two hours.",
            "Sunlight is free fuel. Helio turns it into battery on every trail.",
            "280 g of solar power that rides on your pack, rain or shine.",
            "Out on the trail for days? Helio charges your phone from sunlight in two hours, "
            "weighs 280 g and shrugs off rain. Clip it to your pack and keep going.",
            "Your phone is your map, camera and lifeline. Helio keeps it charged with nothing "
            "but sunlight, and it is waterproof to 1 m. Pack light, stay connected.",
            "Sunlight in, battery out. Helio charges a phone in two hours of sun and weighs "
            "280 g. Made for hikers who would rather carry water than power banks.",
            "Every trail has sunlight. Helio turns it into a charged phone, and at 280 g "
            "you will forget it is on your pack until you need it.",
            "Rain on the trail? Helio is waterproof to 1 m. Sun again? Two hours and your "
            "phone is charged. Built for hikers who go far.",
        ),
    ),
    "Cold brew coffee subscription": (
        "Brewline",
        "Warm, unhurried, a little witty",
        ("fresh", "weekly"),
        ("cheap", "addictive"),
        "Brewline roasts and brews in small batches",
        (
            "Fresh cold brew, weekly",
            "Your weekly coffee ritual",
            "Cold brew at your door",
            "Fresh brew, zero effort",
            "Sip fresh every week",
            "Fresh cold brew delivered weekly. Cancel any time, no questions.",
            "Your first box ships free. Fresh cold brew arrives every week after.",
            "Skip the café queue: fresh cold brew lands at your door every week.",
            "Mornings are busy. Brewline brings fresh cold brew weekly. Cancel any time.",
            "Fresh, smooth cold brew every week. Try it: your first box ships free.",
            "Busy mornings deserve better coffee. Brewline delivers fresh cold brew weekly, "
            "your first box ships free, and you can cancel any time.",
            "Pour, sip, go. Fresh cold brew arrives every week, so the fridge is never empty "
            "and the school run starts with something good.",
            "Small batches, brewed fresh, delivered weekly. Brewline fits your week, and if "
            "it ever does not, cancel any time.",
            "Coffee that waits for you, not the other way round. Fresh cold brew every week, "
            "first box on us: it ships free.",
            "Parents run on coffee. Brewline keeps the fridge stocked with fresh cold brew "
            "every week. Cancel any time; your first box ships free.",
        ),
    ),
    "Noise-cancelling headphones": (
        "Hush",
        "Minimal, confident, quiet",
        ("quiet", "commute"),
        ("cheap", "deafening"),
        "Hush designs headphones for city life",
        (
            "Quiet, on every commute",
            "40 hours of quiet",
            "Your commute, muted",
            "Fold, pack, find quiet",
            "The quiet commute",
            "40-hour battery and active quiet. Hush folds flat into a pocket case.",
            "Turn the train down. Hush brings quiet to every commute for 40 hours.",
            "Light, foldable, quiet: Hush fits your bag and your commute.",
            "A week of commutes on one charge: Hush runs 40 hours.",
            "Quiet in one tap. Hush folds flat and lasts 40 hours.",
            "Your commute is loud. Hush is not. Active noise cancelling, a 40-hour battery "
            "and a case that folds flat into your pocket.",
            "Trains, buses, open offices: Hush turns them down. 40 hours of battery means "
            "a whole week of commutes between charges.",
            "Quiet is a feature. Hush headphones are light, foldable and last 40 hours, so "
            "the commute becomes the calm part of your day.",
            "Fold them flat, drop them in your pocket, find quiet anywhere. Hush lasts 40 "
            "hours on one charge.",
            "Make the commute yours. Hush cancels the noise, lasts 40 hours and folds into a "
            "pocket-sized case.",
        ),
    ),
    "Online Spanish lessons": (
        "Hola Tutors",
        "Friendly, encouraging, patient",
        ("native", "tutor"),
        ("cheap", "effortless"),
        "Hola Tutors teaches Spanish online",
        (
            "Spanish with a native tutor",
            "Speak Spanish, one-to-one",
            "Your tutor, your pace",
            "First lesson free",
            "Learn Spanish in 25 minutes",
            "One-to-one Spanish with native tutors. Your first lesson is free.",
            "25-minute lessons that fit your day, with a native tutor.",
            "Start speaking Spanish: one-to-one lessons, first lesson free.",
            "A native tutor, just for you. Book a 25-minute Spanish lesson.",
            "Beginners welcome. Learn Spanish one-to-one with a native tutor.",
            "Always wanted to speak Spanish? Start with a native tutor, one-to-one, in "
            "25-minute lessons. Your first lesson is free.",
            "Learn Spanish the way it is spoken. Hola Tutors pairs you with a native tutor "
            "for one-to-one lessons that fit any schedule.",
            "No classroom, no pressure: 25-minute Spanish lessons with a native tutor who "
            "goes at your pace. Try your first lesson free.",
            "Beginners start here. One-to-one lessons with native tutors, 25 minutes each, "
            "and the first one is free.",
            "Your tutor, your questions, your pace. Spanish one-to-one with native tutors; "
            "book your free first lesson today.",
        ),
    ),
}


def distinct_2(texts: list[str]) -> float:
    """Distinct word pairs over all word pairs of one brief's variants."""
    bigrams = [pair for text in texts for pair in itertools.pairwise(text.casefold().split())]
    return len(set(bigrams)) / len(bigrams) if bigrams else 0.0


def brand_for(product: str) -> BrandVoice:
    name, voice, preferred, forbidden, fact, texts = BRANDS[product]
    examples = tuple(
        BrandExample(LENGTHS[index // 5], text, "import") for index, text in enumerate(texts)
    )
    profile = BrandProfile(
        name=name, voice=voice, preferred_terms=preferred, forbidden_terms=forbidden,
        facts=(fact,), examples=examples,
    )  # fmt: skip
    return BrandVoice(f"brand-eval-{name.lower().replace(' ', '-')}", 1, profile)


def figures(briefs: Sequence[CopyBrief], returned: Sequence[list[str]]) -> dict[str, float]:
    """The brand run's figures; grounding allows the brand's name, terms and facts (what the
    pipeline allows), and adherence is measured against the product's brand either way."""
    texts = [(b, t) for b, ts in zip(briefs, returned, strict=True) for t in ts]
    pairs = sum(len(b.keywords) for b, _ in texts) or 1
    covered = sum(len(b.keywords) - len(keywords_missing(t, b.keywords)) for b, t in texts)
    flagged = 0
    adherent = 0
    for brief, text in texts:
        profile = brand_for(brief.product).profile
        terms = (profile.name, *profile.preferred_terms, *profile.facts)
        flagged += bool(check_grounding(text, Evidence.of(brief, terms)))
        adherent += uses_voice(text, profile)
    shown = len(texts) or 1
    requested = sum(b.variants for b in briefs) or 1
    return {
        "keyword_coverage": covered / pairs,
        "ungrounded": flagged / shown,
        "delivered": len(texts) / requested,
        "distinct_2": sum(distinct_2(ts) for ts in returned) / max(1, len(returned)),
        "voice": adherent / shown,
    }


async def run(copywriter: Runtime, briefs: Sequence[CopyBrief], chunk: int) -> str:
    """Both runs (strict grounding, cache bypassed), and the report section."""
    results: dict[bool, list[list[str]]] = {False: [], True: []}
    for with_brand in (False, True):
        for start in range(0, len(briefs), chunk):
            batch = [
                dataclasses.replace(
                    b,
                    cache=CachePolicy.BYPASS,
                    grounding="strict",
                    brand=brand_for(b.product) if with_brand else None,
                )
                for b in briefs[start : start + chunk]
            ]
            written = await copywriter.workflow.generate_many(batch, copywriter.deadline())
            results[with_brand] += [[v.text for v in r.variants] for r in written]
    without, with_ = figures(briefs, results[False]), figures(briefs, results[True])
    rows = [
        ("voice adherence (a preferred term, no forbidden one)", "voice", "{:.1%}"),
        ("keyword coverage", "keyword_coverage", "{:.1%}"),
        ("variants with an unsupported entity, number or claim", "ungrounded", "{:.1%}"),
        ("requested variants delivered", "delivered", "{:.1%}"),
        ("distinct-2 within a brief", "distinct_2", "{:.3f}"),
    ]
    lines = [
        "## Brands",
        "",
        f"The same {len(briefs)} briefs (strict grounding) without a brand and with the "
        "product's brand: a voice, two preferred and two forbidden terms, one fact, and 15 "
        "examples (5 headline-length, 5 description-length, 5 primary-text-length; the "
        "prompt takes three: the channel's own, else the nearest in length). bench/brand_eval.py "
        "holds them. Adherence is measured against the product's brand in both columns.",
        "",
        "| figure | without a brand | with the brand |",
        "|---|---|---|",
    ]
    lines += [
        f"| {label} | {fmt.format(without[key])} | {fmt.format(with_[key])} |"
        for label, key, fmt in rows
    ]
    return "\n".join(lines)
