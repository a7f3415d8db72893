"""Traces across real processes: a `copygen serve` in front of a second one serving a tiny
model over the OpenAI API (as vLLM would), both exporting to a real OTLP/HTTP receiver. One
/v1/copy call with a ``traceparent`` is one trace: the front's request, cache lookup, round
and backend call, and the backend's own request span continuing from that call."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.otlp import OtlpReceiver, ReceivedSpan
from tests.services import Server, start_server, stop_server, wait_ready
from tests.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver
) -> Iterator[tuple[Server, Server]]:
    tiny = build_tiny_model(tmp_path_factory.mktemp("tiny-traced"), chat=True)
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    backend = start_server({"COPYGEN_MODEL": str(tiny), "OTEL_SERVICE_NAME": "model-server",
                            **otel})  # fmt: skip
    front = None
    try:
        wait_ready(backend)
        front = start_server(
            {"COPYGEN_BACKEND_URL": f"{backend.url}/v1", "COPYGEN_MAX_ROUNDS": "1", **otel}
        )
        wait_ready(front)
        yield front, backend
    finally:
        if front is not None:
            stop_server(front)
        stop_server(backend)


def _complete(spans: list[ReceivedSpan]) -> bool:
    return any(s.service == "model-server" and s.kind == "server" for s in spans) and any(
        s.name == "POST /v1/copy" for s in spans
    )


def test_a_copy_call_is_one_trace_from_the_caller_through_the_model_server(
    servers: tuple[Server, Server], receiver: OtlpReceiver
) -> None:
    front, _ = servers
    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    headers = {"traceparent": f"00-{trace_id}-{parent}-01", "X-Request-ID": "traced-e2e-1"}
    body = {"product": "Desk lamp", "variants": 1, "max_new_tokens": 8, "seed": 1}
    response = httpx.post(f"{front.url}/v1/copy", json=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text

    spans = receiver.wait_for(trace_id, _complete)
    ours = [s for s in spans if s.service == "copygen"]
    [request] = [s for s in ours if s.name == "POST /v1/copy"]
    assert (request.kind, request.parent_span_id) == ("server", parent)
    assert request.attributes["http.response.status_code"] == 200
    [lookup] = [s for s in ours if s.name == "cache.lookup"]
    assert (lookup.parent_span_id, lookup.attributes["copygen.hit"]) == (request.span_id, False)
    [round_] = [s for s in ours if s.name == "generation.round"]
    assert round_.parent_span_id == request.span_id
    assert round_.attributes["copygen.rows"] == 2
    assert round_.attributes["copygen.completion_tokens"] > 0
    assert "copygen.first_token_ms" in round_.attributes
    calls = [s for s in ours if s.kind == "client"]
    assert calls
    assert all(call.parent_span_id == round_.span_id for call in calls)
    assert all(call.attributes["http.response.status_code"] == 200 for call in calls)

    # The model server continued the trace from the traceparent each call carried.
    theirs = [s for s in spans if s.service == "model-server" and s.kind == "server"]
    assert {s.parent_span_id for s in theirs} <= {call.span_id for call in calls}
    assert {s.attributes.get("http.route") for s in theirs} <= {
        "/v1/chat/completions", "/v1/completions",
    }  # fmt: skip

    # The request line carries the trace id.
    lines = [json.loads(line) for line in front.log().splitlines() if line.startswith("{")]
    [line] = [entry for entry in lines if entry.get("request_id") == "traced-e2e-1"]
    assert line["trace_id"] == trace_id
