"""Grounding through the real server and the embedded model: under strict nothing returned
states a brand, number or claim the brief does not support; under flag the variants carry
what the checks found, by the same rules."""

from __future__ import annotations

import httpx

from copygen.copywriting.grounding import Evidence, check_grounding
from copygen.domain import CopyBrief
from tests.e2e.conftest import Server

BRIEF = {
    "product": "Insulated steel water bottle",
    "description": "Keeps drinks cold on long days outside.",
    "audience": "cyclists",
    "channel": "meta_primary_text",
    "tone": "quirky but professional",
    "facts": ["holds cold for 24 hours", "ships free over $50"],
    "variants": 3,
    "seed": 11,
    "cache": "bypass",
}


def _evidence() -> Evidence:
    fields = {k: v for k, v in BRIEF.items() if k in ("product", "description", "audience")}
    return Evidence.of(CopyBrief(**fields, facts=tuple(BRIEF["facts"])))  # type: ignore[arg-type]


def test_strict_returns_only_grounded_copy_and_every_variant_explains_itself(
    server: Server,
) -> None:
    response = httpx.post(f"{server.url}/v1/copy", json=BRIEF, timeout=180)
    assert response.status_code == 200, response.text
    body = response.json()
    evidence = _evidence()
    for variant in body["variants"]:
        assert check_grounding(variant["text"], evidence) == ()
        checks = variant["checks"]
        assert checks["flags"] == []
        assert (checks["chars"], checks["fits"]) == (variant["chars"], variant["fits"])
        assert checks["cta"] in (True, False)  # Meta primary text asks for a call to action
        assert checks["readability"]["grade"] is not None
    assert body["delivered"] == len(body["variants"])


def test_flag_returns_what_the_checks_found(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/copy", json={**BRIEF, "grounding": "flag", "seed": 12}, timeout=180
    )
    assert response.status_code == 200, response.text
    evidence = _evidence()
    variants = response.json()["variants"]
    assert variants
    for variant in variants:
        expected = [
            {"type": flag.type, "text": flag.text}
            for flag in check_grounding(variant["text"], evidence)
        ]
        assert variant["checks"]["flags"] == expected
