"""Traces: OpenTelemetry spans, exported over OTLP/HTTP to a collector (then Jaeger, Tempo…).

The only module importing opentelemetry. The rest of copygen calls a few small functions:
``span(name, **fields)`` around a piece of work, ``inject(headers)`` on an outgoing call,
``server_span(...)`` where a request enters. Tracing is on when the process starts it
(``start_tracing``, called by ``copygen serve``) with ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set; the SDK reads the other standard variables
itself (``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``/``_ARG``, ``OTEL_BSP_*``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_PROPAGATORS``…). Off, no SDK provider exists: ``span``
hands back one shared do-nothing object (about 0.2 µs a call) and the request middleware is
not installed at all.

Fields given as keywords become ``copygen.<name>`` attributes; the HTTP spans carry the
semantic-convention names (``http.request.method``, ``http.response.status_code``…).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TypeGuard

from opentelemetry import propagate, trace

from copygen import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("copygen.tracing")

#: The service name when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names one.
DEFAULT_SERVICE_NAME = "copygen"
#: The only OTLP protocol this exporter speaks.
PROTOCOL = "http/protobuf"

Kind = Literal["internal", "server", "client"]
_KINDS = {
    "internal": trace.SpanKind.INTERNAL,
    "server": trace.SpanKind.SERVER,
    "client": trace.SpanKind.CLIENT,
}
#: Attribute values OpenTelemetry takes (a sequence must hold one type).
Value = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]


class Traced:
    """A span being recorded: ``set(**fields)`` adds ``copygen.<name>`` attributes,
    ``set_attribute`` any name. Code that computes costly figures checks ``recording``."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    @property
    def recording(self) -> bool:
        """False for a span the sampler dropped: nothing set on it is kept."""
        return self.span.is_recording()

    @property
    def trace_id(self) -> str:
        return trace.format_trace_id(self.span.get_span_context().trace_id)

    def set(self, **fields: object) -> None:
        """``copygen.<name>`` attributes; values OpenTelemetry cannot hold (None, a dict, a
        list of mixed types) are left out."""
        self.span.set_attributes(
            {f"copygen.{name}": value for name, value in fields.items() if _valid(value)}
        )

    def set_attribute(self, key: str, value: Value) -> None:
        self.span.set_attribute(key, value)

    def failed(self, description: str) -> None:
        """Mark the span as an error without an exception (an HTTP 5xx answer, say)."""
        self.span.set_status(trace.Status(trace.StatusCode.ERROR, description))


class Untraced(Traced):
    """What ``span`` gives when tracing is off: a context manager and a handle that do
    nothing. One instance serves every call."""

    def __init__(self) -> None:
        self.span = trace.INVALID_SPAN

    @property
    def recording(self) -> bool:
        return False

    @property
    def trace_id(self) -> str:
        return ""

    def __enter__(self) -> Untraced:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set(self, **fields: object) -> None:
        pass

    def set_attribute(self, key: str, value: Value) -> None:
        pass

    def failed(self, description: str) -> None:
        pass


OFF = Untraced()


class _Recording(AbstractContextManager[Traced]):
    """A span made current for the ``with`` block, ended at its exit (an exception escaping
    the block is recorded on it and marks it as an error)."""

    def __init__(self, cm: AbstractContextManager[trace.Span]) -> None:
        self._cm = cm

    def __enter__(self) -> Traced:
        return Traced(self._cm.__enter__())

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self._cm.__exit__(kind, exc, tb)


@dataclass(frozen=True, slots=True)
class _Tracing:
    provider: TracerProvider
    tracer: trace.Tracer
    endpoint: str


_active: _Tracing | None = None


def traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """Where spans go, or None when tracing is off: no OTLP endpoint, the SDK disabled
    (OTEL_SDK_DISABLED=true) or no traces exporter (OTEL_TRACES_EXPORTER=none)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    found = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return found.strip() or None if found else None


def start_tracing() -> bool:
    """Turn tracing on when the process environment names an OTLP endpoint; whether it is
    on. Called once by the process before its app is built (``copygen serve``), so the request
    middleware is installed only when it is. The SDK reads the other OTEL_* variables."""
    global _active
    environ = os.environ
    endpoint = traces_endpoint(environ)
    if endpoint is None or _active is not None:
        return _active is not None
    protocol = environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", PROTOCOL)
    )
    if protocol.strip() != PROTOCOL:
        log.warning("OTLP protocol %r is not supported; exporting %s", protocol, PROTOCOL)
    # Imported here: a process that does not trace never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _active = _Tracing(provider, provider.get_tracer("copygen", __version__), endpoint)
    log.info("tracing on: OTLP/HTTP to %s", _without_credentials(endpoint))
    return True


def stop_tracing() -> None:
    """Export what is still buffered (bounded by OTEL_BSP_EXPORT_TIMEOUT) and turn tracing
    off."""
    global _active
    active, _active = _active, None
    if active is not None:
        active.provider.shutdown()


def enabled() -> bool:
    return _active is not None


def span(
    name: str,
    attributes: Mapping[str, Value] | None = None,
    *,
    kind: Kind = "internal",
    **fields: object,
) -> AbstractContextManager[Traced]:
    """A child of the current span for the ``with`` block; ``attributes`` by their own names,
    ``fields`` as ``copygen.<name>`` (None, and values OpenTelemetry cannot hold, left out)."""
    active = _active
    if active is None:
        return OFF
    merged: dict[str, Value] = dict(attributes or {})
    for key, value in fields.items():
        if _valid(value):
            merged[f"copygen.{key}"] = value
    return _Recording(
        active.tracer.start_as_current_span(name, kind=_KINDS[kind], attributes=merged)
    )


def server_span(
    method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
) -> AbstractContextManager[Traced]:
    """The span of one HTTP request, continuing the trace of its W3C ``traceparent`` (and
    ``tracestate``, baggage: whatever OTEL_PROPAGATORS reads) when it has one."""
    active = _active
    if active is None:
        return OFF
    carrier = {key.decode("latin-1"): value.decode("latin-1") for key, value in headers}
    return _Recording(
        active.tracer.start_as_current_span(
            method,
            context=propagate.extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
    )


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """``headers`` with the current span's ``traceparent`` (and ``tracestate``) added, so the
    server called continues this trace (vLLM reads it); untouched when tracing is off."""
    if _active is not None:
        propagate.inject(headers)
    return headers


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or None outside a sampled span (a trace
    id the sampler dropped would lead nowhere)."""
    if _active is None:
        return None
    context = trace.get_current_span().get_span_context()
    sampled = context.is_valid and context.trace_flags.sampled
    return trace.format_trace_id(context.trace_id) if sampled else None


def record_phases(started_ns: int, timings_ms: Mapping[str, float]) -> None:
    """Child spans of the current span for a finished job's phases, placed by its timings
    (generation.py's ``job_timings_ms``, measured from submission at ``started_ns``,
    ``time.time_ns()``): ``queue`` (submitted → admitted), ``prefill`` (admitted → first
    token) and ``decode`` (first token → finished; admitted → finished without a token)."""
    active = _active
    if active is None:
        return
    queue = timings_ms.get("queue", 0.0)
    end = queue + timings_ms.get("generation", 0.0)
    first = timings_ms.get("first_token")
    phases = [("generation.queue", 0.0, queue)]
    if first is not None and queue <= first <= end:
        phases += [("generation.prefill", queue, first), ("generation.decode", first, end)]
    else:
        phases.append(("generation.decode", queue, end))
    for name, start_ms, end_ms in phases:
        phase = active.tracer.start_span(name, start_time=started_ns + int(start_ms * 1e6))
        phase.end(end_time=started_ns + int(end_ms * 1e6))


def now_ns() -> int:
    """A span timestamp: nanoseconds since the epoch."""
    return time.time_ns()


def _valid(value: object) -> TypeGuard[Value]:
    if isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list | tuple):
        kinds = {type(item) for item in value}
        return len(kinds) <= 1 and kinds <= {str, bool, int, float}
    return False


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url
