"""What a brief's rows are steered away from: words and characters the checks would reject in
any variant of the brief, handed to the sampler (GenerationRequest.avoid_words/avoid_chars) so
a row never spends tokens on a variant that is thrown away for them.

Most failed candidates of a small model fail on a claim word ("ultimate", "unlimited",
"complimentary", "free" where the brief offers nothing free), an invented figure ("in just 2
minutes", "$1.87 per session") or an invented handle ("@LuminaHimalaya"). Each word of
``CLAIM_WORDS`` is avoided only when the claim checks (claims.invented_claims,
grounding.risky_claims) flag it for this brief, so a brief whose facts make the claim keeps
it; a character of ``CHARS`` only when the brief itself never writes it, digits one by one
(a brief about a "40-hour battery" keeps 4 and 0). Only under strict grounding, where such a
variant is never returned: the other policies show what the model writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from copygen.copywriting.claims import invented_claims
from copygen.copywriting.grounding import Evidence, risky_claims
from copygen.domain import Grounding

#: Single words that make a claim on their own, per language. The sampler avoids a word only
#: where it is one token; longer claims ("most advanced", "limited time") stay with the checks.
CLAIM_WORDS: dict[str, tuple[str, ...]] = {
    "en": (
        "exclusive", "exclusively", "luxury", "luxurious", "premium", "upscale", "deluxe",
        "elite", "prestigious", "gourmet", "ultimate", "bestseller", "unlimited", "limitless",
        "infinite", "revolutionary", "groundbreaking", "breakthrough", "discount", "discounts",
        "discounted", "cashback", "coupon", "coupons", "complimentary", "giveaway", "bonus",
        "hurry", "doorstep", "organic", "handmade", "certified", "sustainable", "sustainably",
        "hypoallergenic", "award", "awards", "best", "guaranteed", "guarantee", "proven",
        "clinically", "cure", "free", "cheapest", "fastest", "unbeatable", "miracle",
        "official", "amazing", "easy", "new", "tomorrow",
    ),
    "de": (
        "exklusiv", "Luxus", "premium", "ultimative", "unbegrenzt", "grenzenlos",
        "revolutionär", "bahnbrechend", "Weltklasse", "Rabatt", "nachhaltig", "beste",
        "besten", "garantiert", "kostenlos", "gratis",
    ),
    "fr": (
        "exclusif", "exclusive", "luxe", "premium", "ultime", "illimité", "révolutionnaire",
        "remise", "promo", "durable", "meilleur", "meilleure", "garanti", "gratuit", "gratuite",
    ),
    "es": (
        "exclusivo", "exclusiva", "lujo", "premium", "definitivo", "ilimitado", "ilimitada",
        "revolucionario", "descuento", "descuentos", "oferta", "sostenible", "mejor",
        "garantizado", "gratis",
    ),
}  # fmt: skip
#: Characters a variant may only write when the brief does: handles, currencies, percentages,
#: placeholders' brackets and every digit (an invented figure is the commonest grounding
#: failure).
CHARS = "@$€£¥%[]{}<>|0123456789"
#: Pieces of a web address, avoided unless the brief writes them.
ADDRESS_WORDS = ("http", "https", "www")


@dataclass(frozen=True, slots=True)
class Steering:
    """What one brief's rows avoid."""

    words: tuple[str, ...] = ()
    chars: str = ""

    @classmethod
    def of(cls, evidence: Evidence, grounding: Grounding) -> Steering:
        """The words and characters every variant of the brief behind ``evidence`` would be
        rejected for under strict grounding; nothing under the other policies."""
        if grounding != "strict":
            return cls()
        written = evidence.text
        words = [
            word
            for word in CLAIM_WORDS.get(evidence.language, CLAIM_WORDS["en"])
            if invented_claims(word, evidence) or risky_claims(word, evidence)
        ]
        words += [word for word in ADDRESS_WORDS if word not in written.lower()]
        chars = "".join(ch for ch in CHARS if ch not in written)
        return cls(tuple(words), chars)
