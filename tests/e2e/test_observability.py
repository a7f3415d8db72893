"""Logs and metrics of the real server process: JSON lines with request ids, never request
content or keys; /metrics after real generation."""

from __future__ import annotations

import json
import time

import httpx

from tests.e2e.conftest import Server

CANARY_PROMPT = "CANARYPROMPT9d2e"
CANARY_KEY = "sk-CANARYKEY-5f1a"


def test_request_lines_are_json_with_the_request_id_and_never_the_prompt_or_key(
    server: Server,
) -> None:
    body = {
        "product": f"{CANARY_PROMPT} lamp",
        "keywords": [CANARY_PROMPT],
        "variants": 1,
        "max_new_tokens": 8,
        "seed": 1,
    }
    headers = {"X-Request-ID": "e2e-canary-1", "Authorization": f"Bearer {CANARY_KEY}"}
    response = httpx.post(f"{server.url}/v1/copy", json=body, headers=headers, timeout=120)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "e2e-canary-1"
    assert "total;dur=" in response.headers["server-timing"]
    bad = httpx.post(f"{server.url}/v1/copy", json={"product": CANARY_PROMPT, "tone": "x" * 99})
    assert bad.status_code == 422
    metrics = httpx.get(f"{server.url}/metrics").text

    deadline = time.monotonic() + 5
    while "e2e-canary-1" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    [line] = [entry for entry in lines if entry.get("request_id") == "e2e-canary-1"]
    assert line["event"] == "request"
    assert line["route"] == "/v1/copy"
    assert line["status"] == 200
    assert line["latency_ms"] > 0
    assert line["completion_tokens"] > 0
    assert line["jobs"]
    assert {"level", "timestamp", "logger"} <= set(line)
    events = {entry["event"] for entry in lines}
    assert "engine ready" in events
    for text in (log, metrics):
        assert CANARY_PROMPT not in text
        assert CANARY_KEY not in text
    assert 'copygen_http_requests_total{handler="/v1/copy",method="POST",status="2xx"}' in metrics
    assert "copygen_time_to_first_token_seconds_count" in metrics
