"""Ad platforms' asset sets: what a Google Ads responsive search ad and a Meta ad text set
must be, checked as the platforms check them. Pure: service/assets.py writes the texts with
the copy pipeline, this says whether the set passes and why not.

Google Ads (responsive search ads): up to 15 headlines of 30 and 4 descriptions of 90
characters by Google's counting (wide characters count 2), two display-path segments of 15;
assets must be distinct (Google refuses near-identical ones). What copygen adds as rules of a
good set: at least 3 headlines carry a keyword, at least one headline is a call to action, no
headline repeats a path segment verbatim. Meta: up to 5 primary texts (125 shown), 5 headlines
(40) and 5 link descriptions (30).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.postprocess import keywords_missing
from copygen.copywriting.ranking import NEAR_DUPLICATE_JACCARD, word_overlap
from copygen.copywriting.readability import has_call_to_action

RSA_HEADLINES = 15
RSA_DESCRIPTIONS = 4
RSA_MIN_KEYWORD_HEADLINES = 3
PATH_LIMIT = 15
META_TEXTS = 5


@dataclass(frozen=True, slots=True)
class AssetChecks:
    """The set's rules, each met or not; ``failures`` names the unmet ones."""

    within_limits: bool
    distinct: bool
    keyword_headlines: int
    cta_headlines: int
    path_repeats: int
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def near_duplicates(texts: Sequence[str]) -> int:
    """Pairs of texts that are the same after normalisation or share most of their words."""
    return sum(
        1
        for i, a in enumerate(texts)
        for b in texts[i + 1 :]
        if word_overlap(a, b) >= NEAR_DUPLICATE_JACCARD
    )


def rsa_checks(
    headlines: Sequence[str],
    descriptions: Sequence[str],
    keywords: Sequence[str],
    paths: Sequence[str],
    language: str = "en",
) -> AssetChecks:
    headline, description = CHANNELS["google_ads_headline"], CHANNELS["google_ads_description"]
    within = all(_fits(headline.id, t) for t in headlines) and all(
        _fits(description.id, t) for t in descriptions
    )
    paths_ok = all(_fits("google_ads_path", p) for p in paths if p)
    keyworded = sum(
        1 for t in headlines if keywords and len(keywords_missing(t, keywords)) < len(keywords)
    )
    ctas = sum(1 for t in headlines if has_call_to_action(t, language))
    repeats = sum(1 for t in headlines for p in paths if p and t.casefold() == p.casefold())
    distinct = near_duplicates(headlines) == 0 and near_duplicates(descriptions) == 0
    failures = [
        name
        for name, ok in (
            ("over_limit", within and paths_ok),
            ("near_duplicates", distinct),
            ("keyword_headlines", not keywords or keyworded >= RSA_MIN_KEYWORD_HEADLINES),
            ("cta_headline", ctas >= 1),
            ("path_repeated", repeats == 0),
        )
        if not ok
    ]
    return AssetChecks(within and paths_ok, distinct, keyworded, ctas, repeats, tuple(failures))


def meta_checks(
    primary: Sequence[str], headlines: Sequence[str], descriptions: Sequence[str]
) -> AssetChecks:
    """Meta's limits are soft (longer text is cut, not refused): ``within_limits`` says whether
    everything shows in full."""
    within = (
        all(_fits("meta_primary_text", t) for t in primary)
        and all(_fits("meta_headline", t) for t in headlines)
        and all(_fits("meta_link_description", t) for t in descriptions)
    )
    distinct = all(near_duplicates(group) == 0 for group in (primary, headlines, descriptions))
    failures = [
        name for name, ok in (("over_limit", within), ("near_duplicates", distinct)) if not ok
    ]
    return AssetChecks(within, distinct, 0, 0, 0, tuple(failures))


def suggest_pins(
    headlines: Sequence[str], keywords: Sequence[str], brand: str | None
) -> list[int | None]:
    """Google Ads pin positions (1-3) per headline: the first headline naming the brand (else
    the first carrying a keyword) pinned to position 1; the rest unpinned, so Google still
    tests combinations."""
    pins: list[int | None] = [None] * len(headlines)
    for wanted in ([brand] if brand else []) + [None]:
        for index, text in enumerate(headlines):
            terms = [wanted] if wanted else list(keywords)
            if terms and len(keywords_missing(text, terms)) < len(terms):
                pins[index] = 1
                return pins
    return pins


def _fits(channel: str, text: str) -> bool:
    measure = CHANNELS[channel].measure(text)
    return measure.limit is None or measure.units <= measure.limit
