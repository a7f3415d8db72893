"""Which words are ordinary English words, for telling a brand-like name from a capitalised
common word ("Fuel Your Journey" is Title Case, "Tesla" is a name).

The list is the lower-case words of Webster's Second International (1934, public domain; the
FreeBSD ``/usr/share/dict/web2`` file as packaged by ``english-words`` 2.0.2): proper nouns
are capitalised there, so none of its 210,742 lower-case words is a name. Modern words it
predates (app, email, smartphone…) and everyday acronyms are added below. Only English has a
lexicon for names; for other languages the capitalised-word rule of the grounding checks is off.

German, French and Spanish have word lists for the coherence check's non-words
(``is_known_word``): wordfreq's words of Zipf frequency 1.5 or more (bench/build_lexicons.py
writes them; CC BY-SA 4.0, from wordfreq by Robyn Speer). They are held as sorted 64-bit
hashes (~2.6 MB for German's 331,500 words, against ~42 MB as a set of strings) and loaded on
the first text in that language.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import hashlib
import re
from array import array
from importlib import resources

from copygen.copywriting.text import base_forms

#: Words of today's copy that a 1934 dictionary lacks (lower case), and the one-letter words
#: it does not list ("I'm thrilled" is no brand).
MODERN_WORDS = frozenset(
    """
    app apps online offline email emails website websites web blog blogger vlog podcast podcasts
    smartphone smartphones phone phones laptop laptops tablet tablets wifi wi fi bluetooth usb
    gps led leds lcd hd uhd 4k ai ar vr download downloads upload uploads login logout signup
    checkout ecommerce e-commerce subscription subscriptions streaming stream selfie selfies
    emoji emojis hashtag hashtags smartwatch smartwatches headphones earbuds earbud wireless
    charger chargers powerbank gadget gadgets eco vegan keto gluten ok okay fitness workout
    workouts wellness skincare haircare lifestyle startup startups online-only upgrade upgrades
    app-based cloud cyber digital internet inbox newsletter video videos playlist gamer gamers
    gaming esports software hardware tech techie dashboard analytics influencer influencers
    trending unboxing bestseller bestsellers wearable wearables rechargeable recharge recharging
    plug-in plugin plugins ergonomic touchscreen featherlight superfood superfoods
    multitasking biodegradable recyclable reusable refillable upcycled bestselling trendy vibe
    vibes ultralight ultrathin customizable customisable personalized personalised artisanal
    decluttering pilates cardio moisturizer moisturiser sunscreen skincare haircare smoothie
    smoothies takeaway takeout delivery plant-based non-toxic nontoxic antioxidant probiotic
    probiotics microfiber microfibre fleece softshell hardshell trailhead backpacker backpackers
    ebike ebikes scooter scooters hoodie hoodies sneaker sneakers leggings activewear sportswear
    i a
    """.split()  # noqa: SIM905 - a word list reads better as text
)

#: Acronyms copy uses without naming anyone (upper case).
COMMON_ACRONYMS = frozenset(
    """
    AI AR VR USB LED LCD HD UHD GPS UV SPF FAQ DIY VIP CEO CTA PDF API SMS TV PC OK ASAP USA UK
    EU US NYC BBQ RSVP ID PIN ATM DJ IT HR PR SEO RSS URL WWW HTML PS AM PM
    """.split()  # noqa: SIM905 - a word list reads better as text
)


@functools.cache
def english_words() -> frozenset[str]:
    """The lower-case English words (loaded once, ~0.2 s and ~15 MB)."""
    data = resources.files("copygen.copywriting").joinpath("data/words-en.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode("ascii").split()) | MODERN_WORDS


def is_common_word(word: str) -> bool:
    """Whether ``word`` (any case) is an ordinary English word, allowing simple inflection
    (text.base_forms)."""
    return not base_forms(word).isdisjoint(english_words())


#: Languages with a word list of their own besides English (bench/build_lexicons.py).
WORD_LISTS = ("de", "fr", "es")
#: Languages whose non-words can be told (``is_known_word``).
KNOWN_WORD_LANGUAGES = ("en", *WORD_LISTS)
_ELISION = re.compile(r"['’]")


def is_known_word(word: str, language: str) -> bool:
    """Whether ``word`` is a word of ``language``: English by ``is_common_word``, the
    languages of ``WORD_LISTS`` by their list (as written, lower case); False for others."""
    if language == "en":
        return is_common_word(word)
    hashes = _hashes(language)
    # An elided article or pronoun is its own word in the list: "l'huile" is "huile".
    key = _hash(_ELISION.split(word.casefold())[-1])
    index = bisect.bisect_left(hashes, key)
    return index < len(hashes) and hashes[index] == key


@functools.cache
def _hashes(language: str) -> array[int]:
    """The sorted hashes of ``language``'s word list (empty for a language without one)."""
    if language not in WORD_LISTS:
        return array("Q")
    name = f"data/words-{language}.txt.gz"
    data = resources.files("copygen.copywriting").joinpath(name).read_bytes()
    return array("Q", sorted({_hash(w) for w in gzip.decompress(data).decode().split()}))


def _hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
