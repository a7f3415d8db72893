"""Tracing's switch and helpers: off without an endpoint (no SDK provider, spans that do
nothing), and on, spans and an outgoing call's ``traceparent`` as a real OTLP/HTTP receiver
gets them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from copygen.backends.client import OpenAIClient
from copygen.observability import tracing
from tests.otlp import OtlpReceiver, ReceivedSpan, tracing_to_receiver

PHASES = ("queue", "prefill", "decode")
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture
def untraced(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """Tracing on, exporting to a receiver on a loopback port; off again after the test."""
    with tracing_to_receiver(monkeypatch) as receiver:
        yield receiver


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "http://c:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
    ],
)  # fmt: skip
def test_the_endpoint_comes_from_the_standard_variables(
    environ: dict[str, str], expected: str | None
) -> None:
    assert tracing.traces_endpoint(environ) == expected


def test_without_an_endpoint_no_provider_is_installed_and_spans_do_nothing(
    untraced: None,
) -> None:
    assert tracing.start_tracing() is False
    assert not tracing.enabled()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    with tracing.span("cache.lookup", tier="l1") as traced:
        traced.set(hit=True)
        assert traced is tracing.OFF
        assert not traced.recording
    assert tracing.inject({}) == {}
    assert tracing.current_trace_id() is None


def _named(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    [found] = [span for span in spans if span.name == name]
    return found


def test_spans_nest_and_carry_copygen_attributes(receiver: OtlpReceiver) -> None:
    with tracing.span("outer", {"server.port": 1}, kind="client", rows=3) as outer:
        trace_id = outer.trace_id
        assert tracing.current_trace_id() == trace_id
        outer.set(tokens=12, failures=["keywords:2"], skipped=None, nested={"a": 1})
        with tracing.span("inner"):
            tracing.record_phases(tracing.now_ns(), {"queue": 1.0, "generation": 5.0,
                                                     "first_token": 3.0})  # fmt: skip
    with pytest.raises(ValueError, match="boom"), tracing.span("failing"):
        raise ValueError("boom")
    tracing.stop_tracing()

    spans = receiver.trace(trace_id)
    outer_span = _named(spans, "outer")
    assert outer_span.service == "copygen"  # OTEL_SERVICE_NAME unset
    assert outer_span.kind == "client"
    assert outer_span.attributes == {
        "server.port": 1, "copygen.rows": 3, "copygen.tokens": 12,
        "copygen.failures": ["keywords:2"],
    }  # fmt: skip
    inner = _named(spans, "inner")
    assert inner.parent_span_id == outer_span.span_id
    queue, prefill, decode = (_named(spans, f"generation.{n}") for n in PHASES)
    assert {queue.parent_span_id, prefill.parent_span_id, decode.parent_span_id} == {inner.span_id}
    assert queue.end_ns - queue.start_ns == 1_000_000
    assert (prefill.start_ns, prefill.end_ns) == (queue.end_ns, queue.start_ns + 3_000_000)
    assert (decode.start_ns, decode.end_ns) == (prefill.end_ns, queue.start_ns + 6_000_000)
    [failing] = [span for span in receiver.spans if span.name == "failing"]
    assert failing.error


def _sse(*chunks: dict[str, object]) -> bytes:
    lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return "".join([*lines, "data: [DONE]\n\n"]).encode()


async def test_a_backend_call_is_a_client_span_whose_traceparent_goes_with_it(
    receiver: OtlpReceiver,
) -> None:
    seen: list[httpx.Headers] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}
        return httpx.Response(200, content=_sse(chunk))

    client = OpenAIClient(
        "http://vllm:8000/v1",
        api_key=None,
        timeout_s=5,
        max_connections=2,
        transport=httpx.MockTransport(backend),
    )
    with tracing.span("generation.round") as parent:
        async with client.stream("/chat/completions", {"n": 2}) as chunks:
            assert [chunk async for chunk in chunks]
    await client.close()
    tracing.stop_tracing()

    call = _named(receiver.trace(parent.trace_id), "POST /chat/completions")
    assert call.kind == "client"
    assert call.attributes["server.address"] == "vllm"
    assert call.attributes["server.port"] == 8000
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["copygen.rows"] == 2
    [headers] = seen
    # W3C: version-trace id-parent id (the call's own span)-flags (sampled, maybe random)
    version, trace_id, parent_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", parent.trace_id, call.span_id)
    assert int(flags, 16) & 1


def test_a_caller_that_sampled_its_trace_out_is_followed(receiver: OtlpReceiver) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = [(b"traceparent", f"00-{trace_id}-b7ad6b7169203331-00".encode())]
    with tracing.server_span("POST", "/v1/copy", headers) as traced:
        assert not traced.recording
        assert tracing.current_trace_id() is None  # no exemplar or log line names it
        with tracing.span("cache.lookup") as lookup:
            assert not lookup.recording
    tracing.stop_tracing()
    assert receiver.trace(trace_id) == []
