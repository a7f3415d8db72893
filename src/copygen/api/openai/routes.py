"""OpenAI-compatible routes: chat and text completions (stream and non-stream), models."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from fastapi import APIRouter, Request
from sse_starlette.sse import EventSourceResponse

from copygen.api import state
from copygen.api.deps import DeadlineDep, GeneratorDep
from copygen.api.openai.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageOut,
    CompletionRequest,
    ModelCard,
    ModelList,
    OpenAIRequest,
    TextChoice,
    TextCompletion,
    Usage,
)
from copygen.api.responses import GENERATION_ERRORS, STREAM_OK
from copygen.api.sse import sse_response
from copygen.budget import open_metered_stream
from copygen.deadline import Deadline
from copygen.domain import (
    ChatMessage,
    Completion,
    Generation,
    GenerationRequest,
    SamplingParams,
)
from copygen.errors import ModelNotFound
from copygen.generation import GenerationStream, Generator

router = APIRouter(tags=["openai"])

DEFAULT_MAX_TOKENS = 256
STARTED = int(time.time())
OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    **GENERATION_ERRORS,
    404: GENERATION_ERRORS[422],
    429: GENERATION_ERRORS[422],
    **STREAM_OK,
}


def _check_model(engine: Generator, requested: str | None) -> None:
    served = engine.model_id
    if requested not in (None, "", served, served.rsplit("/", 1)[-1], "copygen", "default"):
        raise ModelNotFound("this service serves one model; GET /v1/models names it", field="model")


def _request(body: OpenAIRequest, **what: Any) -> GenerationRequest:
    return GenerationRequest(
        sampling=SamplingParams(
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
            repetition_penalty=body.repetition_penalty,
            max_new_tokens=body.token_budget(DEFAULT_MAX_TOKENS),
            seed=body.seed,
        ),
        n=body.n,
        stop=body.stops(),
        **what,
    )


async def _generate(
    http: Request, engine: Generator, request: GenerationRequest, deadline: Deadline
) -> Generation:
    """The non-stream reply's one generation, with its token counts left for the request log
    line."""
    [generation] = (await engine.run([request], deadline)).generations
    usage = _usage(generation)
    fields = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    state.set_log_fields(http.scope, fields)
    return generation


def _usage(generation: Generation) -> Usage:
    completion = sum(c.completion_tokens for c in generation.completions)
    return Usage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=completion,
        total_tokens=generation.prompt_tokens + completion,
    )


@router.get("/v1/models")
async def list_models(engine: GeneratorDep) -> ModelList:
    return ModelList(data=[ModelCard(id=engine.model_id, created=STARTED)])


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=OPENAI_ERRORS)
async def chat_completions(
    body: ChatCompletionRequest, engine: GeneratorDep, deadline: DeadlineDep, http: Request
) -> ChatCompletion | EventSourceResponse:
    _check_model(engine, body.model)
    messages = tuple(ChatMessage(m.role, m.content) for m in body.messages)
    request = _request(body, messages=messages)
    reply = await _reply(CHAT, body, request, engine, deadline, http)
    return cast(ChatCompletion | EventSourceResponse, reply)


@router.post("/v1/completions", response_model=TextCompletion, responses=OPENAI_ERRORS)
async def completions(
    body: CompletionRequest, engine: GeneratorDep, deadline: DeadlineDep, http: Request
) -> TextCompletion | EventSourceResponse:
    _check_model(engine, body.model)
    request = _request(body, messages=(), prompt=body.prompt)
    reply = await _reply(TEXT, body, request, engine, deadline, http)
    return cast(TextCompletion | EventSourceResponse, reply)


@dataclass(frozen=True, slots=True)
class _Shape:
    """How one kind of completion is answered: its id prefix, reply model and choice."""

    id_prefix: str
    chat: bool
    reply: type[ChatCompletion] | type[TextCompletion]
    choice: Callable[[int, Completion], ChatChoice | TextChoice]


CHAT = _Shape(
    "chatcmpl",
    True,
    ChatCompletion,
    lambda i, c: ChatChoice(
        index=i, message=ChatMessageOut(content=c.text), finish_reason=c.finish_reason
    ),
)
TEXT = _Shape(
    "cmpl",
    False,
    TextCompletion,
    lambda i, c: TextChoice(index=i, text=c.text, finish_reason=c.finish_reason),
)


async def _reply(
    shape: _Shape,
    body: OpenAIRequest,
    request: GenerationRequest,
    engine: Generator,
    deadline: Deadline,
    http: Request,
) -> ChatCompletion | TextCompletion | EventSourceResponse:
    """The one way both routes answer: a stream, or the whole reply with its usage."""
    reply_id, created = f"{shape.id_prefix}-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        # Reserved before the stream opens: a spent token budget is a 429, not an event.
        stream = await open_metered_stream(engine, [request], deadline)
        return _stream(stream, engine.model_id, body, reply_id, created, chat=shape.chat)
    generation = await _generate(http, engine, request, deadline)
    choices: list[Any] = [shape.choice(i, c) for i, c in enumerate(generation.completions)]
    return shape.reply(
        id=reply_id,
        created=created,
        model=engine.model_id,
        choices=choices,
        usage=_usage(generation),
    )


def _stream(
    stream: GenerationStream,
    model_id: str,
    body: OpenAIRequest,
    reply_id: str,
    created: int,
    *,
    chat: bool,
) -> EventSourceResponse:
    """OpenAI chunks of a job already submitted (so its errors kept their status code)."""
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    head = {
        "id": reply_id,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": model_id,
    }
    return sse_response(_chunks(stream, head, body.n, include_usage, chat=chat))


async def _chunks(
    stream: GenerationStream, head: dict[str, Any], n: int, include_usage: bool, *, chat: bool
) -> AsyncIterator[tuple[str | None, Any]]:
    """OpenAI's chunk sequence: (chat only) a role delta per choice, content deltas, a final
    chunk per choice with its finish_reason, optionally a usage chunk, then [DONE]."""

    def chunk(
        index: int, text: str | None, finish: str | None, role: bool = False
    ) -> dict[str, Any]:
        if chat:
            delta: dict[str, str] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": index, "delta": delta}
        else:
            choice = {"index": index, "text": text or ""}
        choice |= {"finish_reason": finish, "logprobs": None}
        return {**head, "choices": [choice]}

    if chat:
        for index in range(n):
            yield None, chunk(index, "", None, role=True)
    async for event in stream.events():
        index = event.key[2]
        if event.delta:
            yield None, chunk(index, event.delta, None)
        if event.finish_reason is not None:
            yield None, chunk(index, None if chat else "", event.finish_reason)
    if include_usage:
        [generation] = stream.finished().generations
        yield None, {**head, "choices": [], "usage": _usage(generation).model_dump()}
    yield None, "[DONE]"
