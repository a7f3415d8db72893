"""The OpenAI Python client against the real server and the embedded model."""

from __future__ import annotations

import httpx
import openai

from tests.e2e.conftest import Server


def _client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_models(server: Server) -> None:
    models = _client(server).models.list()
    assert [m.id for m in models.data] == ["HuggingFaceTB/SmolLM2-135M-Instruct"]


def test_chat_completion_greedy_is_deterministic(server: Server) -> None:
    client = _client(server)
    kwargs = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": "Write a short catchy headline for a bike."}],
        "temperature": 0,
        "max_tokens": 24,
    }
    first = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    second = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    text = first.choices[0].message.content
    assert text
    assert text == second.choices[0].message.content
    assert first.usage is not None
    assert first.usage.completion_tokens <= 24
    assert first.choices[0].finish_reason in ("stop", "length")


def test_chat_stream_matches_the_non_stream_text(server: Server) -> None:
    client = _client(server)
    kwargs = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": "Name three colours."}],
        "temperature": 0,
        "max_tokens": 20,
    }
    whole = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    pieces = []
    for chunk in client.chat.completions.create(stream=True, **kwargs):  # type: ignore[call-overload]
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
    # Incrementally, not one blob (a chunk may carry several tokens: speculative decoding).
    assert len(pieces) >= 2
    assert "".join(pieces) == whole.choices[0].message.content


def test_text_completion(server: Server) -> None:
    result = _client(server).completions.create(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        prompt="The best thing about summer is",
        max_tokens=8,
        temperature=0,
    )
    assert result.choices[0].text


def test_copy_stream_over_a_real_socket(server: Server) -> None:
    brief = {"product": "Trail running shoes", "channel": "email_subject", "variants": 2,
             "stream": True, "seed": 3}  # fmt: skip
    with httpx.stream("POST", f"{server.url}/v1/copy", json=brief, timeout=180) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert any(line == "event: draft" for line in lines)
    assert "event: result" in lines
    assert lines[-1] == "data: [DONE]"
