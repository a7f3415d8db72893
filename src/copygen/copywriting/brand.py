"""A stored brand's part in the copy: which of its examples fit a channel, and how its
preferred terms and its down-rated phrasing move a candidate in the ranking. Pure."""

from __future__ import annotations

from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.postprocess import keywords_missing
from copygen.copywriting.ranking import word_overlap
from copygen.domain import BrandExample, BrandProfile, BrandVoice

#: Examples that go into a prompt: a small model copies the shape of a few good answers; more
#: cost prompt tokens on every row (each ~20-60 tokens).
PROMPT_EXAMPLES = 3
#: Ranking bonus per preferred term a candidate uses, counted up to PREFERRED_COUNTED terms.
PREFERRED_BONUS = 0.05
PREFERRED_COUNTED = 2
#: A candidate whose words overlap a down-rated text by at least AVOID_FROM loses
#: AVOID_PENALTY times that overlap.
AVOID_FROM = 0.5
AVOID_PENALTY = 0.3
#: Down-rated texts a brand remembers for ranking (the most recent).
AVOID_KEPT = 20


def prompt_examples(brand: BrandProfile, channel: str) -> list[BrandExample]:
    """Up to PROMPT_EXAMPLES examples: the channel's own first (newest first), then the
    others nearest in length to what the channel allows.

    >>> from copygen.domain import BrandExample as E, BrandProfile as P
    >>> b = P("Acme", examples=(E("sms", "a"), E("email_subject", "bb"), E("sms", "c")))
    >>> [e.text for e in prompt_examples(b, "sms")]
    ['c', 'a', 'bb']
    """
    own = [e for e in reversed(brand.examples) if e.channel == channel]
    limit = CHANNELS[channel].limit or 200
    others = sorted(
        (e for e in brand.examples if e.channel != channel),
        key=lambda e: abs(len(e.text) - limit),
    )
    return [*own, *others][:PROMPT_EXAMPLES]


def voice_adjustment(text: str, brand: BrandVoice) -> float:
    """How the brand moves ``text`` in the ranking: a bonus per preferred term used, a
    penalty when it reads like something the brand's users rated down."""
    preferred = brand.profile.preferred_terms
    used = len(preferred) - len(keywords_missing(text, preferred))
    bonus = PREFERRED_BONUS * min(used, PREFERRED_COUNTED)
    closest = max((word_overlap(text, avoided) for avoided in brand.avoid), default=0.0)
    penalty = AVOID_PENALTY * closest if closest >= AVOID_FROM else 0.0
    return round(bonus - penalty, 4)


def uses_voice(text: str, brand: BrandProfile) -> bool:
    """Voice adherence (make eval): at least one preferred term (when the brand has any) and
    no forbidden term."""

    def any_of(terms: tuple[str, ...]) -> bool:
        return len(keywords_missing(text, terms)) < len(terms)

    preferred = not brand.preferred_terms or any_of(brand.preferred_terms)
    return preferred and not any_of(brand.forbidden_terms)
