"""The asset routes' own part (their HTTP contract is in tests/unit/api/test_assets.py): a set
answered in the route's shape, and a brief naming a brand the tenant lacks refused before any
model work."""

from __future__ import annotations

from pathlib import Path

import pytest

from copygen.api.routes.assets import meta_response, rsa_response
from copygen.copywriting.assets import AssetChecks
from copygen.domain import Usage, Variant
from copygen.service.assets import AssetSet
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner

CHECKS = AssetChecks(True, True, 3, 1, 0, ())


def _variant(text: str) -> Variant:
    return Variant(text, len(text), 30, True, (), 0.7)


def _set(parts: dict[str, list[Variant]], pins: list[int | None]) -> AssetSet:
    return AssetSet("copy-1", "fake/model", parts, CHECKS, pins, Usage(9, 4), {"total": 3.0}, True)


def test_an_rsa_answer_puts_each_pin_beside_its_headline() -> None:
    made = _set(
        {"headlines": [_variant("Acme Solar"), _variant("Go solar")],
         "descriptions": [_variant("Charge anywhere.")], "paths": []},
        [1, None],
    )  # fmt: skip
    answer = rsa_response(made, ["Solar", ""], "https://example.com")
    assert [(h.text, h.pin) for h in answer.headlines] == [("Acme Solar", 1), ("Go solar", None)]
    assert [d.text for d in answer.descriptions] == ["Charge anywhere."]
    assert (answer.paths, answer.final_url, answer.cached) == (
        ["Solar", ""],
        "https://example.com",
        True,
    )
    checks = answer.checks
    assert (checks.passed, checks.failures, checks.keyword_headlines, checks.cta_headlines) == (
        True, [], 3, 1,
    )  # fmt: skip
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (9, 4)


def test_a_meta_answer_carries_each_part_and_the_link() -> None:
    parts = {"primary_texts": [_variant("Light up the porch.")], "headlines": [_variant("Glow")],
             "descriptions": []}  # fmt: skip
    answer = meta_response(_set(parts, [None]), None)
    assert ([p.text for p in answer.primary_texts], [h.text for h in answer.headlines]) == (
        ["Light up the porch."], ["Glow"],
    )  # fmt: skip
    assert (answer.descriptions, answer.link) == ([], None)


@pytest.mark.parametrize("path", ["/v1/assets/google-ads-rsa", "/v1/assets/meta-ad"])
async def test_a_brand_the_tenant_lacks_is_404_before_any_model_work(
    tmp_path: Path, path: str
) -> None:
    runner = FakeRunner()
    body = {"product": "solar lamp", "brand": "br_nobody", "final_url": "https://example.com"}
    if path.endswith("meta-ad"):
        del body["final_url"]
    async with serving(app(runner, data_dir=tmp_path)) as client:
        response = await client.post(path, json=body)
    assert (response.status_code, response.json()["error"]["field"]) == (404, "brand")
    assert runner.calls == []
