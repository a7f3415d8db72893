"""The request's trace, in process over a fake runner, as a real OTLP/HTTP receiver gets it:
a /v1/copy call continues the caller's ``traceparent`` with its cache lookup and generation
rounds inside, and its trace id is the latency bucket's exemplar; without tracing the
middleware is not there at all."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from copygen.api.app import create_app
from copygen.api.middleware.tracing import TracingMiddleware
from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.observability import tracing
from tests.client import wait_ready
from tests.fakes import FakeRunner, spelled
from tests.otlp import ReceivedSpan, tracing_to_receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _app() -> FastAPI:
    config = Settings(warmup=False)
    runner = FakeRunner(lambda request, row: f"Charge with the sun {spelled(row)}")
    return create_app(config, engine=Engine(config, runner))


def _traced(app: FastAPI) -> bool:
    return any(middleware.cls is TracingMiddleware for middleware in app.user_middleware)


def test_without_tracing_the_middleware_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert not tracing.start_tracing()
    assert not _traced(_app())


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    [found] = [span for span in spans if span.name == name]
    return found


async def test_a_copy_call_continues_the_callers_trace_with_its_cache_and_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = {"product": "Solar charger", "variants": 2, "keywords": ["lantern"], "seed": 3}
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01", "X-Request-ID": "traced-1"}
    with tracing_to_receiver(monkeypatch) as receiver:
        app = _app()
        assert _traced(app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            await wait_ready(c)
            first = await c.post("/v1/copy", json=body, headers=headers)
            again = await c.post("/v1/copy", json=body, headers=headers)  # the fast path's
            openmetrics = await c.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            )
            classic = await c.get("/metrics")
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json()["cache_tier"] == "l1"
        tracing.stop_tracing()
        spans = receiver.trace(TRACE)

    # The latency histogram links its buckets to traces, in the format that can say so.
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert f'# {{trace_id="{TRACE}"}}' in openmetrics.text
    assert classic.headers["content-type"].startswith("text/plain")
    assert "trace_id" not in classic.text

    request = _one(spans, "POST /v1/copy")
    assert (request.kind, request.parent_span_id) == ("server", PARENT)
    assert request.attributes["http.route"] == "/v1/copy"
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["copygen.request_id"] == "traced-1"
    assert request.attributes["copygen.cached"] is False
    fast = _one(spans, "POST")  # no route ran: the fast path answered from L1
    assert fast.parent_span_id == PARENT
    assert fast.attributes["copygen.cached"] is True
    assert fast.attributes["copygen.cache_tier"] == "l1"

    lookup = _one(spans, "cache.lookup")
    assert lookup.parent_span_id == request.span_id
    assert lookup.attributes["copygen.hit"] is False
    assert "copygen.tier" not in lookup.attributes

    rounds = sorted(
        (span for span in spans if span.name == "generation.round"),
        key=lambda span: span.attributes["copygen.round"],
    )
    assert len(rounds) >= 2  # round 1 missed the keyword everywhere: more rounds
    first_round = rounds[0].attributes
    assert rounds[0].parent_span_id == request.span_id
    assert first_round["copygen.briefs"] == 1
    assert first_round["copygen.rows"] == 4  # 2 variants, oversampled twice
    assert first_round["copygen.model"] == "fake/model"
    assert first_round["copygen.prompt_tokens"] > 0
    assert first_round["copygen.completion_tokens"] > 0
    assert first_round["copygen.queue_ms"] >= 0
    assert first_round["copygen.first_token_ms"] > 0
    assert first_round["copygen.checked"] == 4
    assert first_round["copygen.passed"] == 0
    assert "keywords:4" in first_round["copygen.failures"]
    assert isinstance(first_round["copygen.flags"], list)
    phases = {span.name for span in spans if span.parent_span_id == rounds[0].span_id}
    assert phases == {"generation.queue", "generation.prefill", "generation.decode"}
