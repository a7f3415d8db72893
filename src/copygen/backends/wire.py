"""The OpenAI wire format as copygen speaks it to a model server: request bodies for a row or
``n`` rows, streamed chunks into rows, and which domain error a failed call becomes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from copygen.backends.client import BackendCallError, OpenAIClient
from copygen.backends.job import Row
from copygen.domain import GenerationRequest
from copygen.errors import BackendOverloaded, BackendUnavailable, CopygenError
from copygen.generation import RowEvent


async def stream_rows(
    client: OpenAIClient,
    path: str,
    body: dict[str, Any],
    rows: list[Row],
    emit: Callable[[RowEvent], None],
) -> dict[str, Any]:
    """Stream one call into ``rows`` (one per choice), each token delta to ``emit`` as it
    comes; the call's usage, if the server sent it."""
    usage: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    async with client.stream(path, body) as chunks:
        async for chunk in chunks:
            if chunk.get("usage") is not None:
                usage = _usage(chunk["usage"])
            for choice in _choices(chunk.get("choices")):
                row = rows[_position(choice, len(rows))]
                if delta := delta_text(choice):
                    row.first_token = row.first_token or loop.time()
                    row.text += delta
                    row.tokens += 1
                    emit(RowEvent(row.key, delta, None, row.text, 0, row.tokens))
                if choice.get("finish_reason"):
                    row.finish = "length" if choice["finish_reason"] == "length" else "stop"
    if any(row.finish is None for row in rows):
        raise BackendCallError("stream_ended", counts=True)
    return usage


# A server's chunk is data, not code: any shape but the documented one is a bad response
# (the breaker counts it), never an exception that would make a 500.


def _choices(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise BackendCallError("bad_response", counts=True)
    return value


def _position(choice: dict[str, Any], rows: int) -> int:
    position = choice.get("index", 0)
    # bool is an int subclass; a float index or a numeric string is no index either.
    if type(position) is not int or not 0 <= position < rows:
        raise BackendCallError("bad_response", counts=True)
    return position


def _usage(value: object) -> dict[str, Any]:
    """Token counts the job adds up (Job.record): whole non-negative numbers or absent."""
    if not isinstance(value, dict) or any(
        value.get(name) is not None and (type(value[name]) is not int or value[name] < 0)
        for name in ("prompt_tokens", "completion_tokens")
    ):
        raise BackendCallError("bad_response", counts=True)
    return value


def request_body(
    request: GenerationRequest, model: str, n: int, seed: int | None
) -> tuple[str, dict[str, Any]]:
    """The path and body of a streamed completion of ``n`` rows of ``request``. The chat
    template is the server's; response priming (``prefix``) has no OpenAI form and is left
    out."""
    sampling = request.sampling
    body: dict[str, Any] = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": sampling.max_new_tokens,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "repetition_penalty": sampling.repetition_penalty,
    }
    if n > 1:
        body["n"] = n
    if seed is not None:
        body["seed"] = seed
    if request.stop:
        body["stop"] = list(request.stop)
    if request.prompt is not None:
        return "/completions", body | {"prompt": request.prompt}
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    return "/chat/completions", body | {"messages": messages}


def delta_text(choice: dict[str, Any]) -> str:
    """A chat chunk's content delta, or a text completion chunk's text."""
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return str(delta.get("content") or "")
    return str(choice.get("text") or "")


def domain_error(exc: BackendCallError) -> CopygenError:
    """What the client sees: the one error shape, never the backend's own words."""
    if exc.reason == "busy":
        return BackendOverloaded(
            "the model server is busy; retry shortly", retry_after_s=exc.retry_after_s
        )
    if exc.reason == "status_4xx":
        return BackendUnavailable(f"the model server refused the request ({exc.status})")
    return BackendUnavailable("the model server failed; retry shortly")
