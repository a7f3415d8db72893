"""Wire models of the brand and feedback routes. Every field has a cap; unknown fields are
rejected; validation errors never echo input (api/responses.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from copygen.api.schemas import Fact, clean_tone, known_channel
from copygen.domain import MAX_EXAMPLES, Brand, BrandExample, BrandProfile
from copygen.service.brands import MAX_EXAMPLE_CHARS

Term = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
MAX_TERMS = 50
#: Feedback ids are 32-bit integers in the database.
MAX_ID = 2**31 - 1
MAX_FACTS = 50
STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)


class StrictIn(BaseModel):
    """A request body of these routes: unknown fields refused, and no text (nor text in a
    list) holding NUL, which PostgreSQL refuses in text columns: such a write failed as 503
    store_unavailable, and no brand or feedback needs the character."""

    model_config = STRICT

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("text must not contain NUL characters")
        return value


class ExampleIn(StrictIn):
    channel: str = Field(description="One of GET /v1/channels.")
    text: str = Field(min_length=1, max_length=MAX_EXAMPLE_CHARS)
    source: Literal["manual", "feedback", "import"] = "manual"

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return known_channel(value)

    def to_example(self) -> BrandExample:
        return BrandExample(self.channel, self.text, self.source)


class BrandIn(StrictIn):
    """A whole brand (POST, PUT)."""

    name: str = Field(min_length=1, max_length=100)
    voice: str = Field("", max_length=500, description="How the brand speaks, in your words.")
    tone: str = Field("", max_length=60, description="A preset of GET /v1/tones or your words.")
    audience: str = Field("", max_length=200)
    preferred_terms: list[Term] = Field(default_factory=list, max_length=MAX_TERMS)
    forbidden_terms: list[Term] = Field(
        default_factory=list, max_length=MAX_TERMS, description="Never in returned copy."
    )
    facts: list[Fact] = Field(
        default_factory=list,
        max_length=MAX_FACTS,
        description="Claims the copy may make about the brand (grounding allows them).",
    )
    examples: list[ExampleIn] = Field(default_factory=list, max_length=MAX_EXAMPLES)
    auto_learn: bool = Field(
        False, description="Up-rated copy of this brand becomes one of its examples."
    )

    @field_validator("tone")
    @classmethod
    def _tone(cls, value: str) -> str:
        return clean_tone(value) if value else value

    def to_profile(self) -> BrandProfile:
        data = self.model_dump(exclude={"examples"})
        for name in ("preferred_terms", "forbidden_terms", "facts"):
            data[name] = tuple(data[name])
        return BrandProfile(**data, examples=tuple(e.to_example() for e in self.examples))


class BrandPatch(BrandIn):
    """Some fields of a brand (PATCH): the ones sent replace the stored ones."""

    name: str = Field("", max_length=100)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value:
            raise ValueError("name cannot be empty")
        return value

    def changes(self) -> dict[str, Any]:
        fields = self.to_profile()
        return {name: getattr(fields, name) for name in self.model_fields_set}


class ExampleOut(BaseModel):
    channel: str
    text: str
    source: str


class BrandOut(BaseModel):
    id: str
    version: int
    name: str
    voice: str
    tone: str
    audience: str
    preferred_terms: list[str]
    forbidden_terms: list[str]
    facts: list[str]
    examples: list[ExampleOut]
    auto_learn: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, brand: Brand) -> BrandOut:
        f = brand.profile
        return cls(
            id=brand.id, version=brand.version, name=f.name, voice=f.voice, tone=f.tone,
            audience=f.audience, preferred_terms=list(f.preferred_terms),
            forbidden_terms=list(f.forbidden_terms), facts=list(f.facts),
            examples=[ExampleOut(channel=e.channel, text=e.text, source=e.source)
                      for e in f.examples],
            auto_learn=f.auto_learn, created_at=brand.created_at.replace(tzinfo=UTC),
            updated_at=brand.updated_at.replace(tzinfo=UTC),
        )  # fmt: skip


class BrandPage(BaseModel):
    data: list[BrandOut]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last.")


class PromoteIn(StrictIn):
    """An example for a brand: from a feedback id, or given directly."""

    feedback_id: int | None = Field(None, ge=1, le=MAX_ID)
    example: ExampleIn | None = None


class FeedbackIn(StrictIn):
    copy_id: str = Field(min_length=1, max_length=40, description="A /v1/copy response's id.")
    variant: int | Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="The variant's index in the response, or its text."
    )
    rating: Literal["up", "down"]
    edited_text: str | None = Field(None, min_length=1, max_length=2000)
    note: str | None = Field(None, max_length=1000)


class FeedbackOut(BaseModel):
    id: int
    copy_id: str
    variant: int
    rating: Literal["up", "down"]
    brand: str | None
    learned: bool = Field(description="The variant became one of the brand's examples.")
    created_at: datetime


def brand_etag(brand: Brand) -> str:
    return f'"{brand.version}"'


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match names (None: absent or ``*``); -1 when it names none that
    could exist, so the write fails with 412 as HTTP says."""
    if value is None or value.strip() == "*":
        return None
    tag = value.split(",")[0].strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() and len(tag) < 12 else -1


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)
