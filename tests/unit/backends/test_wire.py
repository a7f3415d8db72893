"""The OpenAI wire format copygen sends to a model server, and how a server's words become
copygen's: Retry-After, request bodies, error mapping."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from copygen.backends.client import BackendCallError, retry_after
from copygen.backends.wire import domain_error, request_body
from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
from copygen.errors import BackendOverloaded, BackendUnavailable

CHAT = GenerationRequest(
    messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "A lamp headline.")),
    sampling=SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=24, seed=7),
    n=3,
    prefix="Lamp",
    stop=("\n\n",),
)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [("7", 7, 7), ("0", 1, 1), ("soon", 1, 1), ("", 1, 1)],
)
def test_retry_after_reads_seconds_and_never_says_zero(header: str, low: int, high: int) -> None:
    assert low <= retry_after(httpx.Headers({"Retry-After": header})) <= high


def test_retry_after_reads_an_http_date() -> None:
    header = formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after(httpx.Headers({"Retry-After": header})) <= 31


def test_a_chat_request_streams_n_rows_with_its_sampling_and_stops() -> None:
    path, body = request_body(CHAT, "m", 3, 7)
    assert path == "/chat/completions"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "A lamp headline."},
    ]
    assert body["n"] == 3
    assert body["seed"] == 7
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 24
    assert body["stop"] == ["\n\n"]
    assert (body["temperature"], body["top_p"]) == (0.7, 0.9)


def test_one_row_sends_no_n_and_a_prompt_goes_to_completions() -> None:
    request = GenerationRequest(messages=(), sampling=SamplingParams(), prompt="A lamp")
    path, body = request_body(request, "m", 1, None)
    assert path == "/completions"
    assert body["prompt"] == "A lamp"
    assert "n" not in body
    assert "seed" not in body
    assert "messages" not in body


def test_failures_become_the_domain_errors_without_the_servers_words() -> None:
    busy = domain_error(BackendCallError("busy", counts=False, status=429, retry_after_s=9))
    assert isinstance(busy, BackendOverloaded)
    assert busy.retry_after_s == 9
    refused = BackendCallError("status_4xx", counts=False, status=400, detail="secret prompt")
    assert isinstance(domain_error(refused), BackendUnavailable)
    assert "secret" not in domain_error(refused).message
    assert isinstance(domain_error(BackendCallError("connect", counts=True)), BackendUnavailable)
