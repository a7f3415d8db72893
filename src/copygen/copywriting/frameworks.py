"""Copywriting frameworks and tones as versioned prompt fragments."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Framework:
    id: str
    name: str
    version: int
    stages: tuple[str, ...]
    fragment: str


FRAMEWORKS: dict[str, Framework] = {
    f.id: f
    for f in (
        Framework("aida", "AIDA", 1, ("attention", "interest", "desire", "action"),
                  "Grab attention, build interest, create desire, then call to action."),
        Framework("pas", "PAS", 1, ("problem", "agitate", "solution"),
                  "Name the reader's problem, make it felt, then present the product as the fix."),
        Framework("bab", "BAB", 1, ("before", "after", "bridge"),
                  "Show life before, life after, and the product as the bridge between them."),
        Framework("fab", "FAB", 1, ("features", "advantages", "benefits"),
                  "Turn a feature into its advantage and the benefit the reader gets."),
        Framework("4u", "4U", 1, ("useful", "urgent", "unique", "ultra-specific"),
                  "Be useful, urgent, unique and ultra-specific."),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tone:
    id: str
    description: str


TONES: dict[str, Tone] = {
    t.id: t
    for t in (
        Tone("friendly", "warm and approachable"),
        Tone("professional", "clear, credible and polished"),
        Tone("playful", "light-hearted and fun"),
        Tone("bold", "confident and punchy"),
        Tone("luxury", "refined and exclusive"),
        Tone("urgent", "time-sensitive and direct"),
        Tone("witty", "clever with a light touch of humour"),
        Tone("empathetic", "understanding and caring"),
        Tone("inspirational", "uplifting and motivating"),
        Tone("informative", "factual and helpful"),
        Tone("casual", "relaxed and conversational"),
        Tone("persuasive", "compelling and benefit-led"),
    )
}
