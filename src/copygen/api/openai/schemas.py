"""Wire models of the OpenAI-compatible routes (the subset copygen implements)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP = 4


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class OpenAIRequest(BaseModel):
    """Sampling fields shared by chat and text completions. OpenAI defaults, plus the
    ``top_k`` and ``repetition_penalty`` extensions that vLLM and TGI also accept."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str | None = Field(None, max_length=200)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, le=1000)
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, le=2048)
    max_completion_tokens: int | None = Field(None, ge=1, le=2048)
    n: int = Field(1, ge=1, le=10)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = Field(0.0, ge=0.0, le=0.0, description="only 0 is supported")
    frequency_penalty: float = Field(0.0, ge=0.0, le=0.0, description="only 0 is supported")
    logprobs: Literal[False] | None = None
    user: str | None = Field(None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > MAX_STOP or any(not s or len(s) > 64 for s in stops):
            raise ValueError(f"stop takes at most {MAX_STOP} non-empty strings of <= 64 chars")
        return stops

    def stops(self) -> tuple[str, ...]:
        return tuple(self.stop or ()) if not isinstance(self.stop, str) else (self.stop,)

    def token_budget(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=16_000)
    name: str | None = Field(None, max_length=64)


class ChatCompletionRequest(OpenAIRequest):
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=64)


class CompletionRequest(OpenAIRequest):
    prompt: str = Field(min_length=1, max_length=32_000)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "copygen"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
