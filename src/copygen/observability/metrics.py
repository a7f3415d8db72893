"""Prometheus metrics. Engine observations arrive through the MetricsSink methods; figures the
engine already keeps (queue depth, cache counters, breaker states) are read at scrape time by
a collector, so the hot path pays nothing for them.

Every name has the ``copygen_`` prefix and base units. Labels are bounded: route templates,
outcomes, tiers, reasons, breaker names. Never keys, tenants or prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from copygen.generation import QueueFigures
from copygen.observability import tracing
from copygen.resilience.breaker import STATE_VALUE

if TYPE_CHECKING:
    from copygen.service.jobs import JobRunner
    from copygen.service.runtime import Runtime

#: The media type a scraper names in Accept to get exemplars (Prometheus does by default).
OPENMETRICS = "application/openmetrics-text"
OPENMETRICS_TYPE = openmetrics.CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 60
)  # fmt: skip
STEP_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256)

#: Error type → rejection reason (the label of copygen_rejections_total).
REJECTION_REASONS = {
    "queue_full": "queue_full",
    "rate_limited": "rate_limit",
    "deadline_exceeded": "deadline",
    "circuit_open": "circuit_open",
    "memory_pressure": "memory",
    "not_ready": "not_ready",
    "draining": "draining",
}


class Metrics:
    """One registry per app, so tests can build many apps in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        #: Whether latency buckets get trace ids as exemplars (tracing was on when the app was
        #: built): untraced, observe_http does not even ask.
        self.exemplars = tracing.enabled()
        ProcessCollector(registry=self.registry)
        r = self.registry
        self.queue_wait = Histogram(
            "copygen_queue_wait_seconds",
            "Time a generation job waited before its first row joined the batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "copygen_time_to_first_token_seconds",
            "From job submission to its first decoded token.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inter_token = Histogram(
            "copygen_inter_token_latency_seconds",
            "Duration of one decoding step: the gap between two of a row's stream chunks "
            "(a step can bring several tokens with speculative decoding).",
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "copygen_batch_size_rows",
            "Rows decoded together in one step.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "copygen_prompt_tokens", "Prompt tokens prefilled.", registry=r
        )
        self.generated_tokens = Counter("copygen_generated_tokens", "Tokens generated.", registry=r)
        self.rejections = Counter(
            "copygen_rejections",
            "Requests refused on purpose, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in sorted(set(REJECTION_REASONS.values())):
            self.rejections.labels(reason)
        self.breaker_transitions = Counter(
            "copygen_breaker_transitions",
            "Circuit breaker state changes.",
            ["breaker", "state"],
            registry=r,
        )
        self.info = Gauge(
            "copygen_build_info", "Version and model.", ["version", "model"], registry=r
        )

        self.backend_duration = Histogram(
            "copygen_backend_request_duration_seconds",
            "Calls to the remote model server by outcome (ok, error, cancelled).",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_ttft = Histogram(
            "copygen_backend_time_to_first_token_seconds",
            "Time from a call to the remote model server to its first token.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "copygen_backend_errors",
            "Failed calls to the remote model server by reason.",
            ["reason"],
            registry=r,
        )

        self.http_requests = Counter(
            "copygen_http_requests",
            "HTTP requests by route template, method and status class.",
            ["handler", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "copygen_http_request_duration_seconds",
            "HTTP request latency by route template, method and status class (outcome).",
            ["handler", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    # --- MetricsSink ----------------------------------------------------------------------

    def step(self, rows: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.inter_token.observe(seconds)

    def job_done(
        self,
        queue_s: float,
        first_token_s: float | None,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        self.queue_wait.observe(queue_s)
        if first_token_s is not None:
            self.ttft.observe(first_token_s)
        self.prompt_tokens.inc(prompt_tokens)
        self.generated_tokens.inc(completion_tokens)

    def backend_call(self, outcome: str, seconds: float, first_token_s: float | None) -> None:
        self.backend_duration.labels(outcome).observe(seconds)
        if first_token_s is not None:
            self.backend_ttft.observe(first_token_s)

    def backend_error(self, reason: str) -> None:
        self.backend_errors.labels(reason).inc()

    # --- the rest -------------------------------------------------------------------------

    def observe_http(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """One finished HTTP request (fed by the request log middleware). /metrics itself is
        left out; paths that are no route count as "none"."""
        if route == "/metrics":
            return
        labels = (route or "none", method, f"{status // 100}xx")
        self.http_requests.labels(*labels).inc()
        # The request's trace id (when traced) as the bucket's exemplar: Grafana links a slow
        # bucket to a trace. Only the OpenMetrics exposition carries it.
        trace_id = tracing.current_trace_id() if self.exemplars else None
        exemplar = {"trace_id": trace_id} if trace_id else None
        self.http_duration.labels(*labels).observe(seconds, exemplar)

    def rejected(self, error_type: str) -> None:
        reason = REJECTION_REASONS.get(error_type)
        if reason is not None:
            self.rejections.labels(reason).inc()

    def breaker_changed(self, name: str, state: str) -> None:
        self.breaker_transitions.labels(name, state).inc()

    def watch(self, runtime: Callable[[], Runtime | None]) -> None:
        """Read the runtime's own figures (generator, cache, breakers, store, jobs) at every
        scrape."""
        self.registry.register(_ServiceCollector(runtime))
        self.registry.register(_JobsCollector(lambda: _jobs(runtime())))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def exposition_with_exemplars(self) -> bytes:
        """OpenMetrics (``OPENMETRICS_TYPE``), whose latency buckets carry their exemplars:
        the trace id of a request that fell in them."""
        return bytes(openmetrics.generate_latest(self.registry))  # type: ignore[no-untyped-call]


def _jobs(runtime: Runtime | None) -> JobRunner | None:
    return runtime.jobs if runtime is not None else None


class _JobsCollector(Collector):
    def __init__(self, jobs: Callable[[], JobRunner | None]) -> None:
        self._jobs = jobs

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        jobs = self._jobs()
        if jobs is None:
            return
        family = GaugeMetricFamily("copygen_jobs", "Stored jobs by status.", labels=["status"])
        for name in ("queued", "running", "succeeded", "cancelled", "failed"):
            family.add_metric([name], jobs.figures.get(name, 0))
        yield family
        yield _counter(
            "copygen_job_items_done", "Job items this process finished.", jobs.items_done_total
        )


#: (metric, help, the figure) of the default generator's QueueFigures.
QUEUE_GAUGES: tuple[tuple[str, str, Callable[[QueueFigures], float]], ...] = (
    ("copygen_queue_depth", "Jobs waiting for the batch.", lambda f: f.queued_jobs),
    ("copygen_running_rows", "Rows in the running batch.", lambda f: f.running_rows),
    (
        "copygen_backend_in_flight",
        "Calls in flight to the remote model server.",
        lambda f: f.backend_in_flight,
    ),
    ("copygen_batch_ceiling_rows", "Current adaptive batch ceiling.", lambda f: f.batch_ceiling),
)


class _ServiceCollector(Collector):
    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self._runtime = runtime

    def describe(self) -> list[Metric]:
        return []  # collected lazily: the runtime may not exist yet

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        if runtime is None:
            return
        engine = runtime.default.snapshot()
        f = engine.figures
        yield _gauge("copygen_ready", "1 when the model is loaded and warm.", int(engine.ready))
        for name, doc, figure in QUEUE_GAUGES:
            yield _gauge(name, doc, figure(f))
        yield _counter("copygen_forward_passes", "Model forward calls.", f.forward_passes)
        yield _counter(
            "copygen_prompt_tokens_reused",
            "Prompt tokens whose KV came from stored prefixes (a conversation prefix, a brief's "
            "earlier round) instead of a prefill; copygen_prompt_tokens minus this is what ran.",
            f.prompt_tokens_reused,
        )
        yield _counters(
            "copygen_draft_tokens",
            "Speculative decoding: tokens guessed, and guessed tokens the model confirmed.",
            "outcome",
            {"proposed": f.draft_tokens, "accepted": f.draft_tokens_accepted},
        )
        yield _counters(
            "copygen_oom_events",
            "Device out-of-memory steps: split (retried in halves) or failed (at one row).",
            "outcome",
            {"split": f.oom_splits, "failed": f.oom_failures},
        )
        yield _gauge(
            "copygen_degraded_to_cpu",
            "1 after falling back from the GPU.",
            int(engine.degraded_to_cpu),
        )
        yield _gauge("copygen_draining", "1 while shutting down.", int(runtime.draining))
        yield _gauge(
            "copygen_memory_shedding",
            "1 while memory is above its mark.",
            int(engine.memory.shedding),
        )
        yield _counters(
            "copygen_jobs_cancelled",
            "Jobs dropped by their client, by stage.",
            "stage",
            {"queued": f.jobs_cancelled_queued, "running": f.jobs_cancelled_running},
        )
        if engine.load_seconds is not None:
            yield _gauge(
                "copygen_model_load_seconds", "Time to load the model.", engine.load_seconds
            )

        cache = runtime.cache
        c = cache.counters
        yield _counters(
            "copygen_cache_hits", "Cache hits by tier.", "tier", {"l1": c.hits_l1, "l2": c.hits_l2}
        )
        yield _counter("copygen_cache_misses", "Lookups found in no tier.", c.misses)
        yield _counter(
            "copygen_cache_single_flight_shared",
            "Requests that shared another request's generation.",
            cache.flights.shared_total,
        )
        yield _gauge("copygen_cache_l1_entries", "Entries in L1.", len(cache.l1))
        yield _gauge("copygen_cache_l1_bytes", "Encoded bytes held in L1.", cache.l1.bytes)
        yield _counter(
            "copygen_cache_l1_admission_rejected",
            "New entries TinyLFU kept out of a full L1.",
            cache.l1.rejected_total,
        )
        breakers = GaugeMetricFamily(
            "copygen_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            labels=["breaker"],
        )
        for breaker in runtime.breakers():
            breakers.add_metric([breaker.name], STATE_VALUE[breaker.state])
        yield breakers
        if cache.l2 is not None:
            yield _gauge("copygen_redis_up", "1 while Redis answers.", int(cache.l2.up))
            yield _counter("copygen_redis_errors", "Failed Redis calls.", cache.l2.errors_total)
        if (book := runtime.book) is not None:
            figures = book.figures
            yield _gauge("copygen_store_up", "1 once the database is migrated.", int(book.migrated))
            yield _gauge("copygen_brands", "Stored brands, every tenant.", figures["brands"])
            yield _gauge(
                "copygen_brand_examples", "Examples the stored brands hold.", figures["examples"]
            )
            feedback = GaugeMetricFamily(
                "copygen_feedback_stored", "Stored feedback by rating.", labels=["rating"]
            )
            for rating in ("up", "down"):
                feedback.add_metric([rating], figures[rating])
            yield feedback
            yield _counter(
                "copygen_store_remember_failures",
                "Responses whose variants could not be kept for feedback.",
                book.remember_failures,
            )
        for name, value in engine.device.items():
            yield _gauge(f"copygen_{name}", f"Accelerator figure {name}.", value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _counters(name: str, doc: str, label: str, values: dict[str, float]) -> CounterMetricFamily:
    """One counter per value of ``label``."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
