"""copygen in front of an OpenAI-compatible model server: a second `copygen serve` (a tiny
real model, or the embedded one where rows must decode for a while) is the backend, on a free
loopback port. Routes work through it, and
faults are induced for real: kill -9 mid-stream, SIGSTOP, a restart, a client that leaves, a
server answering 429. Rows of docs/reliability.md, "Remote backend"."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.client import parse_sse
from tests.services import Server, free_port, start_server, stop_server, wait_ready
from tests.tiny_model import build_tiny_model

CALLS = "copygen_backend_request_duration_seconds_count"
LONG = 400  # tokens: a row of the embedded model still decoding when the test acts on it


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-backend"), chat=True)


def _backend(tiny: Path, port: int | None = None, **extra: str) -> Server:
    env = {"COPYGEN_MODEL": str(tiny), "COPYGEN_LOG_LEVEL": "warning", **extra}
    server = start_server(env, port=port)
    wait_ready(server)
    return server


def _front(backend: Server, **extra: str) -> Server:
    env = {
        "COPYGEN_BACKEND_URL": f"{backend.url}/v1",
        "COPYGEN_LOG_LEVEL": "warning",
        "COPYGEN_MAX_ROUNDS": "1",
        **extra,
    }
    server = start_server(env)
    wait_ready(server)
    return server


@pytest.fixture(scope="module")
def pair(tiny: Path) -> Iterator[tuple[Server, Server]]:
    backend = _backend(tiny)
    front = _front(backend)
    yield front, backend
    stop_server(front)
    stop_server(backend)


def _chat(server: Server, **body: object) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": "Name a lamp."}], "max_tokens": 8, **body}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)


def _metric(server: Server, name: str, labels: str = "") -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _assert_error_shape(response: httpx.Response, status: tuple[int, ...]) -> dict[str, object]:
    assert response.status_code in status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "field"}
    return error  # type: ignore[no-any-return]


def test_copy_batch_streaming_and_openai_routes_work_through_the_backend(
    pair: tuple[Server, Server],
) -> None:
    front, backend = pair
    models = httpx.get(f"{front.url}/v1/models", timeout=5).json()["data"]
    backend_models = httpx.get(f"{backend.url}/v1/models", timeout=5).json()["data"]
    assert [m["id"] for m in models] == [backend_models[0]["id"]]
    health = httpx.get(f"{front.url}/health", timeout=5).json()
    assert health["backend"]["state"] == "up"
    assert health["backend"]["host"] == backend.url.removeprefix("http://")

    # Usage adds up: what the front reports is what the backend generated.
    before = _metric(backend, "copygen_generated_tokens_total")
    reply = _chat(front, n=2, seed=3, temperature=0.8)
    assert reply.status_code == 200, reply.text
    usage = reply.json()["usage"]
    assert len(reply.json()["choices"]) == 2
    assert usage["completion_tokens"] > 0
    assert usage["prompt_tokens"] > 0
    assert _metric(backend, "copygen_generated_tokens_total") - before == usage["completion_tokens"]

    text = httpx.post(
        f"{front.url}/v1/completions",
        json={"prompt": "A lamp", "max_tokens": 5, "temperature": 0},
        timeout=30,
    )
    assert text.status_code == 200
    assert text.json()["choices"][0]["text"]

    with httpx.stream(
        "POST",
        f"{front.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "stream": True},
        timeout=30,
    ) as streamed:
        events = parse_sse(streamed.read().decode())
    assert events[-1] == (None, "[DONE]")
    assert any(json.loads(data)["choices"][0].get("finish_reason") for _, data in events[:-1])

    brief = {"product": "sun lamp", "variants": 2, "seed": 5, "grounding": "off"}
    copy = httpx.post(f"{front.url}/v1/copy", json=brief, timeout=60)
    assert copy.status_code == 200, copy.text
    assert copy.json()["model"] == backend_models[0]["id"]
    assert copy.json()["usage"]["completion_tokens"] > 0
    assert httpx.post(f"{front.url}/v1/copy", json=brief, timeout=30).json()["cached"]

    batch = httpx.post(
        f"{front.url}/v1/copy/batch",
        json={"items": [{**brief, "seed": 6}, {**brief, "product": "desk fan"}]},
        timeout=60,
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["succeeded"] == 2

    with httpx.stream(
        "POST", f"{front.url}/v1/copy", json={**brief, "seed": 7, "stream": True}, timeout=60
    ) as streamed:
        names = [name for name, _ in parse_sse(streamed.read().decode())]
    assert "draft" in names
    assert "result" in names
    calls = _metric(front, CALLS, '{outcome="ok"}')
    assert calls >= 5


def test_a_client_that_leaves_cancels_the_backends_request(server: Server) -> None:
    """The embedded model as the backend: its rows decode long enough to be left."""
    backend = server
    front = _front(backend)
    label = '{stage="running"}'
    before = _metric(backend, "copygen_jobs_cancelled_total", label)
    body = {
        "messages": [{"role": "user", "content": "Go on."}],
        "max_tokens": LONG,
        "stream": True,
    }
    with httpx.stream("POST", f"{front.url}/v1/chat/completions", json=body, timeout=30) as r:
        for line in r.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break  # a token arrived: the backend is decoding; now leave
    try:
        deadline = time.monotonic() + 10
        while _metric(backend, "copygen_jobs_cancelled_total", label) <= before:
            assert time.monotonic() < deadline, "the backend kept generating for a client gone"
            time.sleep(0.1)
        cancelled = '{outcome="cancelled"}'
        assert _metric(front, CALLS, cancelled) == 1
    finally:
        stop_server(front)


def test_a_backend_answering_429_is_honoured_with_its_retry_after(tiny: Path) -> None:
    # One request a minute: the front's first probe takes it, everything after is a 429.
    backend = _backend(tiny, COPYGEN_RATE_LIMIT="1/minute")
    front = _front(backend)
    try:
        first = _chat(front)
        error = _assert_error_shape(first, (503,))
        assert error["type"] == "backend_overloaded"
        assert int(first.headers["Retry-After"]) >= 1
        calls = _metric(front, CALLS, '{outcome="error"}')
        # Within the Retry-After the front does not call the backend at all.
        second = _chat(front)
        assert _assert_error_shape(second, (503,))["type"] == "backend_overloaded"
        after = _metric(front, CALLS, '{outcome="error"}')
        assert after == calls
        assert httpx.get(f"{front.url}/health/ready", timeout=5).status_code == 200
    finally:
        stop_server(front)
        stop_server(backend)


def test_a_stopped_backend_makes_a_504_at_the_deadline_not_later(tiny: Path) -> None:
    backend = _backend(tiny)
    front = _front(backend, COPYGEN_REQUEST_TIMEOUT_S="2")
    try:
        os.kill(backend.process.pid, signal.SIGSTOP)
        started = time.monotonic()
        reply = _chat(front)
        elapsed = time.monotonic() - started
        assert _assert_error_shape(reply, (504,))["type"] == "deadline_exceeded"
        assert 1.8 <= elapsed < 4.0, elapsed
    finally:
        os.kill(backend.process.pid, signal.SIGCONT)
        stop_server(front)
        stop_server(backend)


def test_a_backend_killed_mid_stream_opens_the_breaker_and_a_restart_recovers(
    tiny: Path,
) -> None:
    port = free_port()
    backend = _backend(tiny, port=port)
    front = _front(backend, COPYGEN_BREAKER_FAILURES="2", COPYGEN_BREAKER_RESET_S="1")
    cached = {"product": "sun lamp", "variants": 1, "seed": 9, "grounding": "off"}
    try:
        assert httpx.post(f"{front.url}/v1/copy", json=cached, timeout=60).status_code == 200
        body = {
            "messages": [{"role": "user", "content": "Go on."}],
            "max_tokens": LONG,
            "stream": True,
        }
        with httpx.stream(
            "POST", f"{front.url}/v1/chat/completions", json=body, timeout=30
        ) as streamed:
            lines = streamed.iter_lines()
            for line in lines:
                if '"content": "' in line and '"content": ""' not in line:
                    backend.process.kill()
                    break
            events = parse_sse("\n".join(lines))
        assert events, "the stream ended without a word"
        name, data = events[-1]
        assert name == "error", events[-3:]
        assert json.loads(data)["error"]["type"] == "backend_unavailable"
        backend.process.wait(timeout=10)

        # Refused now: the breaker opens after the second failure and answers at once.
        first = _chat(front)
        _assert_error_shape(first, (502, 503))
        second = _chat(front)
        error = _assert_error_shape(second, (503,))
        assert error["type"] in ("circuit_open", "not_ready")
        assert "Retry-After" in second.headers
        # Cached copy is still served.
        hit = httpx.post(f"{front.url}/v1/copy", json=cached, timeout=10)
        assert hit.status_code == 200
        assert hit.json()["cached"]

        # The backend comes back on its port: the front recovers without a restart.
        backend = _backend(tiny, port=port)
        deadline = time.monotonic() + 30
        while _chat(front).status_code != 200:
            assert time.monotonic() < deadline, "the front never recovered"
            time.sleep(0.5)
    finally:
        stop_server(front)
        stop_server(backend)


def test_routed_channels_go_to_the_backend_and_the_rest_stay_local(
    tiny: Path, pair: tuple[Server, Server]
) -> None:
    _, backend = pair
    front = start_server(
        {
            "COPYGEN_MODEL": str(tiny),
            "COPYGEN_BACKEND_URL": f"{backend.url}/v1",
            "COPYGEN_BACKEND_ROUTES": "sms",
            "COPYGEN_LOG_LEVEL": "warning",
            "COPYGEN_MAX_ROUNDS": "1",
        }
    )
    try:
        wait_ready(front)
        health = httpx.get(f"{front.url}/health", timeout=5).json()
        assert health["routes"] == {"sms": "backend"}
        assert health["backend"]["state"] == "up"
        assert health["model"]["device"] == "cpu"  # the in-process model writes the rest

        def jobs(server: Server) -> int:
            stats = httpx.get(f"{server.url}/health", timeout=5).json()["engine"]
            return int(stats["jobs_submitted"])

        brief = {"product": "sun lamp", "variants": 1, "seed": 2, "cache": "bypass"}
        local, remote = jobs(front), jobs(backend)
        sms = httpx.post(f"{front.url}/v1/copy", json={**brief, "channel": "sms"}, timeout=60)
        assert sms.status_code == 200, sms.text
        assert (jobs(front), jobs(backend)) == (local, remote + 1)
        headline = httpx.post(f"{front.url}/v1/copy", json=brief, timeout=60)
        assert headline.status_code == 200, headline.text
        assert (jobs(front), jobs(backend)) == (local + 1, remote + 1)
        # Both in one batch: each generator writes its own briefs.
        batch = httpx.post(
            f"{front.url}/v1/copy/batch",
            json={"items": [{**brief, "channel": "sms"}, brief]},
            timeout=60,
        )
        assert batch.json()["succeeded"] == 2
        assert (jobs(front), jobs(backend)) == (local + 2, remote + 2)
    finally:
        stop_server(front)
