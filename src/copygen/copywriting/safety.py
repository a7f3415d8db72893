"""The brand-safety list: words no variant may contain, whatever the brief says.

Operators replace it with COPYGEN_BRAND_SAFETY_WORDS (a comma list; empty turns it off).
The default holds profanity and the claims ad platforms and spam filters reject.
"""

from __future__ import annotations

DEFAULT_BRAND_SAFETY_WORDS: tuple[str, ...] = (
    "damn",
    "hell",
    "crap",
    "shit",
    "fuck",
    "bitch",
    "bastard",
    "porn",
    "guaranteed cure",
    "miracle cure",
    "risk-free",
    "get rich quick",
    "100% free",
    "no catch",
    "lose weight fast",
)


def brand_safety_words(configured: str | None) -> tuple[str, ...]:
    if configured is None:
        return DEFAULT_BRAND_SAFETY_WORDS
    return tuple(word.strip() for word in configured.split(",") if word.strip())
