"""POST /v1/assets/google-ads-rsa and /v1/assets/meta-ad: a platform's whole text set in one
call, as JSON or (``Accept: text/csv``) in the columns its bulk tools import."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request

from copygen.api.asset_schemas import (
    AssetChecksOut,
    AssetOut,
    HeadlineOut,
    MetaRequest,
    MetaResponse,
    RsaRequest,
    RsaResponse,
)
from copygen.api.deps import DeadlineDep, RuntimeDep, TenantDep
from copygen.api.exports import CSV, accepts, csv_response, google_ads_editor, meta_bulk
from copygen.api.responses import GENERATION_ERRORS
from copygen.api.routes.copy import brief_of
from copygen.api.schemas import UsageOut
from copygen.domain import Variant
from copygen.service import assets
from copygen.service.assets import AssetSet

router = APIRouter(tags=["assets"])

ANSWERS: dict[int | str, dict[str, Any]] = {**GENERATION_ERRORS, 200: {"content": {CSV: {}}}}


@router.post("/v1/assets/google-ads-rsa", response_model=RsaResponse, responses=ANSWERS)
async def google_rsa(
    body: RsaRequest,
    runtime: RuntimeDep,
    deadline: DeadlineDep,
    tenant: TenantDep,
    request: Request,
) -> Any:
    """Up to 15 headlines and 4 descriptions for a responsive search ad, distinct, within
    Google's limits by Google's counting, checked as a set (`checks`): at least 3 headlines
    with a keyword, a call to action, no headline repeating a display path; a brand or keyword
    headline suggested for position 1. `Accept: text/csv`: Google Ads Editor's columns."""
    brief = await brief_of(body, runtime.book, tenant)
    made, paths = await assets.google_rsa(
        runtime.workflow, brief, body.headlines, body.descriptions, (body.path1, body.path2),
        tenant, deadline,
    )  # fmt: skip
    if accepts(request, CSV):
        headlines = [
            (v.text, pin) for v, pin in zip(made.parts["headlines"], made.pins, strict=True)
        ]
        text = google_ads_editor(headlines, [v.text for v in made.parts["descriptions"]],
                                 body.final_url, paths, body.campaign, body.ad_group)  # fmt: skip
        return csv_response(text, "google-ads-rsa.csv")
    return rsa_response(made, paths, body.final_url)


@router.post("/v1/assets/meta-ad", response_model=MetaResponse, responses=ANSWERS)
async def meta_ad(
    body: MetaRequest,
    runtime: RuntimeDep,
    deadline: DeadlineDep,
    tenant: TenantDep,
    request: Request,
) -> Any:
    """Up to 5 primary texts, 5 headlines and 5 link descriptions for a Facebook/Instagram
    ad. `Accept: text/csv`: Meta's bulk sheet, one ad per row."""
    brief = await brief_of(body, runtime.book, tenant)
    made = await assets.meta_ad(
        runtime.workflow, brief, body.primary_texts, body.headlines, body.descriptions, tenant,
        deadline,
    )  # fmt: skip
    parts = {name: [v.text for v in variants] for name, variants in made.parts.items()}
    if accepts(request, CSV):
        text = meta_bulk(parts["primary_texts"], parts["headlines"], parts["descriptions"],
                         body.link or "", body.campaign, body.ad_set)  # fmt: skip
        return csv_response(text, "meta-ad.csv")
    return meta_response(made, body.link)


def rsa_response(made: AssetSet, paths: Sequence[str], final_url: str) -> RsaResponse:
    return RsaResponse(
        **_head(made),
        headlines=[HeadlineOut(**_asset(v), pin=pin)
                   for v, pin in zip(made.parts["headlines"], made.pins, strict=True)],
        descriptions=[AssetOut(**_asset(v)) for v in made.parts["descriptions"]],
        paths=list(paths),
        final_url=final_url,
    )  # fmt: skip


def meta_response(made: AssetSet, link: str | None) -> MetaResponse:
    parts = {
        name: [AssetOut(**_asset(v)) for v in variants] for name, variants in made.parts.items()
    }
    return MetaResponse(**_head(made), link=link, **parts)


def _asset(variant: Variant) -> dict[str, Any]:
    return {
        "text": variant.text,
        "chars": variant.chars,
        "limit": variant.limit,
        "fits": variant.fits,
        "score": variant.score,
    }


def _head(made: AssetSet) -> dict[str, Any]:
    checks = made.checks
    return {
        "id": made.id,
        "model": made.model,
        "checks": AssetChecksOut(passed=checks.passed, failures=list(checks.failures),
                                 **{f.name: getattr(checks, f.name)
                                    for f in dataclasses.fields(checks) if f.name != "failures"}),
        "cached": made.cached,
        "usage": UsageOut(prompt_tokens=made.usage.prompt_tokens,
                          completion_tokens=made.usage.completion_tokens),
        "timings_ms": made.timings_ms,
    }  # fmt: skip
