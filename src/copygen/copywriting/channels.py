"""Channels as data: each record says its limit, whether the platform enforces it, how to count.

``len()`` is wrong for several platforms, so every channel names a counting rule:

* ``chars``: Unicode code points after NFC normalisation.
* ``google_ads``: like ``chars`` but double-width (East Asian wide/full-width) characters count 2.
* ``x_weighted``: X's weighted length (twitter-text v3): code points in the Latin and general
  punctuation ranges weigh 1, everything else 2, an emoji sequence 2, every URL 23.
* ``sms``: GSM-7 septets (``^ { } [ ] ~ \\ | €`` count 2) while every character is GSM-7;
  one other character switches the whole message to UCS-2 (UTF-16 code units) and the
  single-segment limit drops from 160 to 70.
* ``words``: whitespace-separated words.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import regex

from copygen.copywriting.text import URL

LimitKind = Literal["hard", "soft", "none"]


@dataclass(frozen=True, slots=True)
class Measure:
    """A text's length under a counting rule, and the limit that rule implies (if it changes it)."""

    units: int
    limit: int | None = None
    detail: str = ""


# --- counting rules -------------------------------------------------------------------------


def count_chars(text: str) -> Measure:
    return Measure(len(unicodedata.normalize("NFC", text)))


def count_google_ads(text: str) -> Measure:
    text = unicodedata.normalize("NFC", text)
    return Measure(sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text))


X_URL_WEIGHT = 23
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),
    (0x2600, 0x27BF),
    (0x2300, 0x23FF),
    (0x2B00, 0x2BFF),
    (0x1F1E6, 0x1F1FF),
)


def _is_emoji_cluster(cluster: str) -> bool:
    return "\ufe0f" in cluster or any(
        lo <= ord(ch) <= hi for ch in cluster for lo, hi in _EMOJI_RANGES
    )


def _x_codepoint_weight(ch: str) -> int:
    cp = ord(ch)
    return 1 if any(lo <= cp <= hi for lo, hi in _X_LIGHT_RANGES) else 2


def count_x_weighted(text: str) -> Measure:
    text = unicodedata.normalize("NFC", text)
    total = 0
    position = 0
    for match in URL.finditer(text):
        total += _x_weight_plain(text[position : match.start()]) + X_URL_WEIGHT
        position = match.end()
    total += _x_weight_plain(text[position:])
    return Measure(total)


def _x_weight_plain(text: str) -> int:
    if text.isascii():  # every ASCII character weighs 1 and none is part of an emoji
        return len(text)
    weight = 0
    for cluster in regex.findall(r"\X", text):
        if _is_emoji_cluster(cluster):
            weight += 2
        else:
            weight += sum(_x_codepoint_weight(ch) for ch in cluster)
    return weight


GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
SMS_LIMITS = {"gsm7": (160, 153), "ucs2": (70, 67)}


def count_sms(text: str) -> Measure:
    """Length in the message's encoding; the limit is what fits in one segment."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        encoding = "gsm7"
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
    else:
        encoding = "ucs2"
        units = len(text.encode("utf-16-le")) // 2
    single, multi = SMS_LIMITS[encoding]
    segments = 1 if units <= single else math.ceil(units / multi)
    return Measure(units, limit=single, detail=f"{encoding}, {segments} segment(s)")


def count_words(text: str) -> Measure:
    return Measure(len(text.split()))


COUNTERS: dict[str, Callable[[str], Measure]] = {
    "chars": count_chars,
    "google_ads": count_google_ads,
    "x_weighted": count_x_weighted,
    "sms": count_sms,
    "words": count_words,
}


# --- the channel table ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Channel:
    """One publishing surface. ``guidance`` completes the sentence "Write ..." in the prompt."""

    id: str
    name: str
    limit: int | None
    kind: LimitKind
    counting: str
    guidance: str
    max_new_tokens: int
    example: str = ""
    single_line: bool = True
    recommended: int | None = None
    forbidden_chars: str = ""
    note: str = ""
    #: Whether copy for this surface should ask the reader to act (it counts in the score).
    wants_cta: bool = False
    #: A title-like surface: an over-long text may be cut before a trailing phrase
    #: ("Solar Phone Charger for Hikers" → "Solar Phone Charger"), not only at a clause.
    cuts_phrases: bool = False
    #: The sampling temperature of this surface's rows when a brief names none: cool for
    #: one-line copy (measured on the gold set's calibration briefs, blind-labelled: usable
    #: 40% at 0.4 against 33% at 0.7 and 36% at 0.2; docs/quality.md), the sampling default
    #: for long copy, where a cool small model repeats itself.
    temperature: float = 0.4

    def measure(self, text: str, max_chars: int | None = None) -> Measure:
        """Count ``text`` by this channel's rule; ``max_chars`` from a brief tightens the limit."""
        if max_chars is not None and self.counting == "words":
            return Measure(count_chars(text).units, limit=max_chars)
        measure = COUNTERS[self.counting](text)
        limit = measure.limit if measure.limit is not None else self.limit
        if max_chars is not None:
            limit = max_chars if limit is None else min(limit, max_chars)
        return Measure(measure.units, limit=limit, detail=measure.detail)


#: One-shot examples, all for the same example brief (prompts.EXAMPLE_BRIEF): a small model
#: copies the shape of a good answer far better than it follows a description of one.
EXAMPLES = {
    "google_ads_headline": "Trail Shoes That Go Further",
    "google_ads_description": "Featherlight trail shoes with grip for wet rock. Free returns. "
    "Order yours today!",
    "google_ads_path": "Trail-Shoes",
    "meta_primary_text": "Every trail feels shorter in shoes this light. Grip that holds on "
    "wet rock. Shop now!",
    "meta_headline": "Lighter Shoes, Longer Trails",
    "meta_link_description": "Trail shoes with free returns",
    "x_post": "Mud, rocks, roots: bring it on. Our new trail shoes weigh less than your phone "
    "and grip like glue. Where will you run first? #TrailRunning",
    "linkedin_post": "Most runners lose time on technical descents, not on the climbs.\n\n"
    "We built our new trail shoe around that: a grippy outsole, a low stack and a "
    "featherlight upper. Early testers ran their usual loops 4% faster.\n\n"
    "Where do you lose the most time on the trail?",
    "linkedin_ad_headline": "Trail Shoes for Runners Who Go Further",
    "email_subject": "Your next trail run just got lighter",
    "sms": "Trail runners: our featherlight shoes are 20% off this week. Shop now and run further!",
    "seo_title": "Lightweight Trail Running Shoes | Grip and Comfort",
    "meta_description": "Shop lightweight trail running shoes with grippy soles and lasting "
    "cushioning. Free shipping and returns on every order.",
    "app_store_subtitle": "Plan and track your trail runs",
    "play_short_description": "Plan trail runs, track your pace and share routes with friends.",
    "amazon_title": "Lightweight Trail Running Shoes, Grippy Outsole, Breathable Mesh",
    "product_description": "Built for trail runners who leave the pavement behind. A grippy "
    "outsole holds on wet rock and loose gravel, and the featherlight upper keeps every "
    "mile easy.\n\n"
    "Cushioning that lasts means fresh legs on the last climb. Lace up and go further.",
}  # fmt: skip

CHANNELS: dict[str, Channel] = {
    c.id: c
    for c in (
        Channel("google_ads_headline", "Google Ads headline", 30, "hard", "google_ads",
                "one Google Ads headline of at most 30 characters", 16, cuts_phrases=True),
        Channel("google_ads_description", "Google Ads description", 90, "hard", "google_ads",
                "one Google Ads description of at most 90 characters", 40, wants_cta=True),
        Channel("google_ads_path", "Google Ads display path", 15, "hard", "google_ads",
                "one Google Ads display path segment of at most 15 characters, no slashes", 8,
                forbidden_chars="/\n"),
        Channel("meta_primary_text", "Meta ad primary text", 125, "soft", "chars",
                "the primary text of a Facebook/Instagram ad, at most 125 characters", 56,
                note="125 characters are shown before the text is cut", wants_cta=True),
        Channel("meta_headline", "Meta ad headline", 40, "soft", "chars",
                "one Facebook/Instagram ad headline of at most 40 characters", 20,
                cuts_phrases=True),
        Channel("meta_link_description", "Meta ad link description", 30, "soft", "chars",
                "one Facebook ad link description (the line under the headline), at most 30 "
                "characters", 16, note="about 30 characters are shown", cuts_phrases=True),
        Channel("x_post", "X post", 280, "hard", "x_weighted",
                "one post for X (Twitter), at most 280 characters", 80, single_line=False,
                temperature=0.7,
                note="weighted: wide characters and emoji count 2, every URL counts 23"),
        Channel("linkedin_post", "LinkedIn post", 3000, "hard", "chars",
                "one LinkedIn post; the first 150 characters must hook the reader", 200,
                single_line=False, recommended=150, temperature=0.7,
                note="about 150 characters are shown before 'see more'"),
        Channel("linkedin_ad_headline", "LinkedIn ad headline", 200, "hard", "chars",
                "one LinkedIn ad headline of at most 70 characters", 32, recommended=70),
        Channel("email_subject", "Email subject line", 60, "soft", "chars",
                "one email subject line of at most 60 characters", 20, recommended=41,
                note="40-60 recommended; about 41 are visible on a phone"),
        Channel("sms", "SMS", 160, "hard", "sms",
                "one SMS marketing message of at most 160 characters", 56,
                note="160 GSM-7 characters per segment (153 when split); 70/67 in UCS-2",
                wants_cta=True),
        Channel("seo_title", "SEO title", 60, "soft", "chars",
                "one SEO page title of at most 60 characters", 20, cuts_phrases=True,
                note="search engines cut titles by pixel width, about 60 characters"),
        Channel("meta_description", "Meta description", 160, "soft", "chars",
                "one meta description for a web page, at most 155 characters", 56,
                recommended=155, wants_cta=True),
        Channel("app_store_subtitle", "App Store subtitle", 30, "hard", "chars",
                "one App Store subtitle of at most 30 characters", 16, cuts_phrases=True),
        Channel("play_short_description", "Google Play short description", 80, "hard", "chars",
                "one Google Play short description of at most 80 characters", 32),
        Channel("amazon_title", "Amazon product title", 200, "hard", "chars",
                "one Amazon product title, ideally under 80 characters", 48, recommended=80),
        Channel("product_description", "Product description", None, "none", "words",
                "a product description of two or three short paragraphs", 160,
                single_line=False, temperature=0.7),
    )
}  # fmt: skip
CHANNELS = {key: replace(c, example=EXAMPLES[key]) for key, c in CHANNELS.items()}
