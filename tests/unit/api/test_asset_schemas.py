"""The asset routes' briefs: every /v1/copy field but those the route decides per part, URLs
that must be http(s), and display paths measured by Google's counting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from copygen.api.asset_schemas import PART_FIELDS, MetaRequest, RsaRequest
from copygen.copywriting.assets import RSA_DESCRIPTIONS, RSA_HEADLINES

RSA = {"product": "Solar charger", "final_url": "https://example.com/charger"}


def test_an_rsa_brief_asks_for_the_whole_set_by_default() -> None:
    request = RsaRequest.model_validate(RSA)
    assert (request.headlines, request.descriptions) == (RSA_HEADLINES, RSA_DESCRIPTIONS)
    assert (request.path1, request.path2) == ("", "")  # generated when both are empty


@pytest.mark.parametrize("field", PART_FIELDS)
def test_fields_the_route_decides_per_part_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="decided by the asset route"):
        RsaRequest.model_validate({**RSA, field: 1})


def test_the_schema_does_not_offer_the_part_fields() -> None:
    for model in (RsaRequest, MetaRequest):
        properties = model.model_json_schema()["properties"]
        assert not set(PART_FIELDS) & set(properties)
        assert "product" in properties


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://example.com", "https://", "https://a b.com", "/path"]
)
def test_urls_must_be_http_with_a_host(url: str) -> None:
    with pytest.raises(ValidationError):
        RsaRequest.model_validate({**RSA, "final_url": url})
    with pytest.raises(ValidationError):
        MetaRequest.model_validate({"product": "x", "link": url})
    assert MetaRequest.model_validate({"product": "x"}).link is None


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("Solar-Chargers", True),
        ("x" * 15, True),
        ("太阳能充电器太阳能", False),  # 9 wide characters: 18 by Google's count
        ("太阳能充电器", True),  # 12
        ("solar/chargers", False),
        ("solar chargers", False),
    ],
)
def test_display_paths_are_measured_as_google_counts_them(path: str, ok: bool) -> None:
    if ok:
        assert RsaRequest.model_validate({**RSA, "path1": path}).path1 == path
    else:
        with pytest.raises(ValidationError):
            RsaRequest.model_validate({**RSA, "path2": path})


def test_a_meta_set_may_leave_out_its_link_descriptions_but_not_its_headlines() -> None:
    assert MetaRequest.model_validate({"product": "x", "descriptions": 0}).descriptions == 0
    with pytest.raises(ValidationError):
        MetaRequest.model_validate({"product": "x", "headlines": 0})
