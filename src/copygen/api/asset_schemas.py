"""Wire models of the asset routes: a brief (every /v1/copy field but the ones the route
decides: channel, variants, max_chars, max_new_tokens, stream) and the set's own fields."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from copygen.api.schemas import CopyRequest, UsageOut
from copygen.copywriting.assets import META_TEXTS, PATH_LIMIT, RSA_DESCRIPTIONS, RSA_HEADLINES
from copygen.copywriting.channels import CHANNELS

#: /v1/copy fields an asset route sets itself, per part.
PART_FIELDS = ("channel", "variants", "max_chars", "max_new_tokens", "stream")


def _drop_part_fields(schema: dict[str, Any]) -> None:
    for name in PART_FIELDS:
        schema.get("properties", {}).pop(name, None)


class AssetBrief(CopyRequest):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        allow_inf_nan=False,
        json_schema_extra=_drop_part_fields,
    )

    @model_validator(mode="before")
    @classmethod
    def _no_part_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in PART_FIELDS:
                if name in data:
                    raise ValueError(f"{name} is decided by the asset route, per part")
        return data


def _url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
        raise ValueError("must be an http(s) URL")
    return value


class RsaRequest(AssetBrief):
    final_url: str = Field(min_length=1, max_length=2048, description="The ad's landing page.")
    path1: str = Field("", max_length=PATH_LIMIT, description="Display path segment (or none: "
                       "generated when both are empty).")  # fmt: skip
    path2: str = Field("", max_length=PATH_LIMIT)
    headlines: int = Field(RSA_HEADLINES, ge=3, le=RSA_HEADLINES)
    descriptions: int = Field(RSA_DESCRIPTIONS, ge=2, le=RSA_DESCRIPTIONS)
    campaign: str = Field("", max_length=255, description="For the CSV export's Campaign column.")
    ad_group: str = Field("", max_length=255)

    @field_validator("final_url")
    @classmethod
    def _final_url(cls, value: str) -> str | None:
        return _url(value)

    @field_validator("path1", "path2")
    @classmethod
    def _path(cls, value: str) -> str:
        measure = CHANNELS["google_ads_path"].measure(value)
        if measure.limit is not None and measure.units > measure.limit:
            raise ValueError(f"at most {PATH_LIMIT} characters by Google's count")
        if "/" in value or " " in value:
            raise ValueError("a path segment has no slashes or spaces")
        return value


class MetaRequest(AssetBrief):
    link: str | None = Field(None, max_length=2048, description="The ad's website URL.")
    primary_texts: int = Field(META_TEXTS, ge=1, le=META_TEXTS)
    headlines: int = Field(META_TEXTS, ge=1, le=META_TEXTS)
    descriptions: int = Field(META_TEXTS, ge=0, le=META_TEXTS)
    campaign: str = Field("", max_length=255)
    ad_set: str = Field("", max_length=255)

    @field_validator("link")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        return _url(value)


class AssetOut(BaseModel):
    text: str
    chars: int = Field(description="Length under the platform's counting rule.")
    limit: int | None
    fits: bool
    score: float


class HeadlineOut(AssetOut):
    pin: int | None = Field(description="Suggested Google Ads pin position (null: unpinned).")


class AssetChecksOut(BaseModel):
    passed: bool
    failures: list[str] = Field(description="The set's unmet rules (docs: README, Assets).")
    within_limits: bool
    distinct: bool = Field(description="No two assets of a part are near-duplicates.")
    keyword_headlines: int
    cta_headlines: int
    path_repeats: int


class RsaResponse(BaseModel):
    id: str
    model: str
    headlines: list[HeadlineOut]
    descriptions: list[AssetOut]
    paths: list[str]
    final_url: str
    checks: AssetChecksOut
    cached: bool
    usage: UsageOut
    timings_ms: dict[str, float]


class MetaResponse(BaseModel):
    id: str
    model: str
    primary_texts: list[AssetOut]
    headlines: list[AssetOut]
    descriptions: list[AssetOut]
    link: str | None
    checks: AssetChecksOut
    cached: bool
    usage: UsageOut
    timings_ms: dict[str, float]
