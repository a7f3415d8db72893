"""The remote generator against an in-process OpenAI-compatible server (httpx's mock
transport): readiness from its models, n rows in one call or one call per row when the server
refuses n, and a busy server's Retry-After honoured without tripping the breaker."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from copygen.backends.client import OpenAIClient
from copygen.backends.remote import SEED_STRIDE, RemoteBackend
from copygen.config import Settings
from copygen.deadline import Deadline
from copygen.domain import ChatMessage, GenerationRequest, SamplingParams, ScoreRequest
from copygen.errors import BackendOverloaded, GenerationFailed
from copygen.resilience.breaker import BreakerState

URL = "http://backend.test/v1"


class OpenAIServer:
    """Serves ``models``; streams "row <index>" per choice; ``takes_n`` False answers 400 to
    n > 1; ``busy_s`` answers 503 with that Retry-After. ``calls`` holds each POST's body."""

    def __init__(self, models: tuple[str, ...] = ("org/served", "org/other")) -> None:
        self.models = models
        self.takes_n = True
        self.busy_s: int | None = None
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"data": [{"id": m} for m in self.models]})
        body = json.loads(request.content)
        self.calls.append(body)
        if self.busy_s is not None:
            return httpx.Response(503, headers={"Retry-After": str(self.busy_s)})
        n = body.get("n", 1)
        if n > 1 and not self.takes_n:
            return httpx.Response(400, json={"error": {"message": "n must be 1"}})
        chunks = [
            {"choices": [{"index": i, "delta": {"content": f"row {i}"}, "finish_reason": None}]}
            for i in range(n)
        ] + [{"choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]} for i in range(n)]
        chunks.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2 * n}})
        lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
        return httpx.Response(
            200, content="".join(lines).encode(), headers={"content-type": "text/event-stream"}
        )


def _backend(server: OpenAIServer, **settings: Any) -> RemoteBackend:
    config = Settings(backend_url=URL, **settings)
    client = OpenAIClient(
        URL, api_key=None, timeout_s=5, max_connections=4, transport=httpx.MockTransport(server)
    )
    return RemoteBackend(config, client)


def _request(n: int, seed: int | None = 11) -> GenerationRequest:
    messages = (ChatMessage("user", "Write a headline"),)
    return GenerationRequest(messages, SamplingParams(seed=seed), n=n)


async def test_it_is_ready_serving_the_servers_first_model_unless_one_is_configured() -> None:
    backend = _backend(OpenAIServer())
    await backend.start()
    assert (backend.ready, backend.model_id) == (True, "org/served")
    assert backend.revision == "remote:backend.test"  # another server, other cache entries
    await backend.stop()
    missing = _backend(OpenAIServer(), backend_model="org/absent")
    await missing.start()
    assert not missing.ready
    section = missing.snapshot().sections["backend"]
    assert (section["state"], section["last_error"]) == ("down", None)
    assert missing.snapshot().sections["model"]["error"] == (
        "the backend does not serve the configured model"
    )
    await missing.stop()


async def test_a_request_of_n_rows_is_one_streamed_call() -> None:
    server = OpenAIServer()
    backend = _backend(server)
    await backend.start()
    finished = await backend.run([_request(3)], Deadline.within(5))
    [generation] = finished.generations
    assert sorted(c.text for c in generation.completions) == ["row 0", "row 1", "row 2"]
    assert [(call["n"], call["seed"], call["model"]) for call in server.calls] == [
        (3, 11, "org/served")
    ]
    assert generation.prompt_tokens == 5
    await backend.stop()


async def test_a_server_that_refuses_n_gets_one_call_per_row_seeded_apart() -> None:
    server = OpenAIServer()
    server.takes_n = False
    backend = _backend(server)
    await backend.start()
    finished = await backend.run([_request(3)], Deadline.within(5))
    assert len(finished.generations[0].completions) == 3
    refused, *rows = server.calls
    assert refused["n"] == 3
    assert sorted(call["seed"] for call in rows) == [11, 11 + SEED_STRIDE, 11 + 2 * SEED_STRIDE]
    assert all("n" not in call for call in rows)
    assert backend.breaker.state is BreakerState.CLOSED  # a 400 to n is no failure
    server.calls.clear()
    await backend.run([_request(2)], Deadline.within(5))  # remembered: no refused try first
    assert len(server.calls) == 2
    assert backend.snapshot().sections["backend"]["takes_n"] is False
    await backend.stop()


async def test_a_busy_server_is_left_alone_for_its_retry_after_without_tripping_the_breaker() -> (
    None
):
    server = OpenAIServer()
    backend = _backend(server, breaker_failures=1)
    await backend.start()
    server.busy_s = 7
    with pytest.raises(BackendOverloaded) as busy:
        await backend.run([_request(1)], Deadline.within(5))
    assert busy.value.retry_after_s == 7
    with pytest.raises(BackendOverloaded) as refused:
        await backend.run([_request(1)], Deadline.within(5))
    assert len(server.calls) == 1  # refused here, the server was not asked again
    assert refused.value.retry_after_s is not None
    assert 1 <= refused.value.retry_after_s <= 7
    assert backend.breaker.state is BreakerState.CLOSED
    await backend.stop()


async def test_relevance_scoring_is_refused_as_a_generation_failure() -> None:
    backend = _backend(OpenAIServer())
    with pytest.raises(GenerationFailed):
        await backend.score([ScoreRequest((ChatMessage("user", "x"),), "y")])
    await backend.stop()
