"""OpenAI-compatible routes over a fake runner: shapes, streaming chunks, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from copygen.api.app import create_app
from copygen.api.openai.routes import DEFAULT_MAX_TOKENS
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.builders import app
from tests.client import parse_sse, serving, wait_ready
from tests.fakes import FakeRunner


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    runner = FakeRunner(lambda request, row: f"reply number {row} here", whole=False)
    config = Settings(warmup=False)
    app = create_app(config, engine=Engine(config, runner))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        yield c


CHAT = {"model": "fake/model", "messages": [{"role": "user", "content": "Say hi"}]}


async def test_models_lists_the_served_model(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["fake/model"]


async def test_chat_completion(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={**CHAT, "n": 2, "seed": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert [c["message"]["content"] for c in body["choices"]] == [
        "reply number 0 here",
        "reply number 1 here",
    ]
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == 10


async def test_chat_stream_chunks_concatenate(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
    )
    events = parse_sse(response.text)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "reply number 0 here"
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finals] == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


async def test_text_completion_and_stream(client: httpx.AsyncClient) -> None:
    body = (await client.post("/v1/completions", json={"prompt": "Once"})).json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "reply number 0 here"
    streamed = await client.post("/v1/completions", json={"prompt": "Once", "stream": True})
    chunks = [json.loads(d) for _, d in parse_sse(streamed.text)[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == "reply number 0 here"


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({**CHAT, "model": "gpt-4o"}, 404, "model"),
        ({**CHAT, "messages": []}, 422, "messages"),
        ({**CHAT, "presence_penalty": 0.5}, 422, "presence_penalty"),
        ({**CHAT, "stop": ["a", "b", "c", "d", "e"]}, 422, "stop"),
        ({**CHAT, "logprobs": True}, 422, "logprobs"),
        ({**CHAT, "tools": []}, 422, None),  # not a field of the schema: never echoed
        ({**CHAT, "n": 11}, 422, "n"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 422, "messages.0.role"),
    ],
)
async def test_openai_errors_use_the_one_shape(
    client: httpx.AsyncClient, payload: dict[str, object], status: int, field: str | None
) -> None:
    response = await client.post("/v1/chat/completions", json=payload)
    assert response.status_code == status
    assert response.json()["error"]["field"] == field


async def test_the_served_model_answers_to_each_of_its_names(client: httpx.AsyncClient) -> None:
    for model in (None, "", "fake/model", "model", "copygen", "default"):
        response = await client.post("/v1/completions", json={"prompt": "Once", "model": model})
        assert response.status_code == 200, model
        assert response.json()["model"] == "fake/model"


async def test_sampling_fields_reach_the_engine_with_the_default_token_budget() -> None:
    runner = FakeRunner(lambda request, row: "reply")
    async with serving(app(runner)) as client:
        await client.post("/v1/completions", json={"prompt": "Once", "stop": "\n", "seed": 7,
                                                   "top_k": 5, "temperature": 0.2})  # fmt: skip
        await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 9})
    [text], [chat] = runner.calls
    assert (text.prompt, text.messages, text.stop) == ("Once", (), ("\n",))
    sampling = text.sampling
    assert (sampling.max_new_tokens, sampling.seed, sampling.top_k) == (DEFAULT_MAX_TOKENS, 7, 5)
    assert sampling.temperature == 0.2
    assert (chat.prompt, chat.sampling.max_new_tokens) == (None, 9)
    assert [m.content for m in chat.messages] == ["Say hi"]
