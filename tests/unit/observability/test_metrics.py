"""/metrics after real traffic through the app (fake runner): the figures move as they should,
and no label carries request content; then the registry on its own (what each observation
feeds, what is read at scrape time)."""

from __future__ import annotations

import asyncio
import threading

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.observability.metrics import Metrics
from copygen.service.runtime import Runtime
from tests.builders import runtime
from tests.fakes import FakeRunner

CANARY = "CANARY-3b1f0c"


def _app(runner: FakeRunner, **settings: object) -> FastAPI:
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    return create_app(config, engine=Engine(config, runner))


async def _ready(c: httpx.AsyncClient) -> None:
    while (await c.get("/health/ready")).status_code != 200:
        await asyncio.sleep(0.01)


async def _scrape(c: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await c.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)  # type: ignore[no-any-return]


async def test_counters_and_histograms_move_with_traffic() -> None:
    runner = FakeRunner(step_delay_s=0.01)
    runner.reused_prompt_tokens_total = 321  # what the runner's prefix stores reused
    app = _app(runner)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await _ready(c)
        before = await _scrape(c)
        body = {"product": f"{CANARY} charger", "variants": 2, "keywords": [CANARY]}
        await c.post("/v1/copy", json=body)
        await c.post("/v1/copy", json=body)  # a hit
        await asyncio.gather(
            *(c.post("/v1/copy", json={"product": f"p{i}", "variants": 2}) for i in range(6))
        )
        await c.post("/v1/copy", json={"product": ""})  # a 422
        text = (await c.get("/metrics")).text
        after = await _scrape(c)

    assert CANARY not in text
    assert _value(after, "copygen_cache_hits_total", tier="l1") == 1
    assert _value(after, "copygen_cache_misses_total") == 7
    ok = {"handler": "/v1/copy", "method": "POST", "status": "2xx"}
    assert _value(after, "copygen_http_requests_total", **ok) == 8
    assert _value(after, "copygen_http_request_duration_seconds_count", **ok) == 8
    bad = {**ok, "status": "4xx"}
    assert _value(after, "copygen_http_requests_total", **bad) == 1
    # Concurrent requests shared steps: some step decoded more than 4 rows (2 briefs).
    steps = _value(after, "copygen_batch_size_rows_count")
    assert steps > 0
    assert _value(after, "copygen_batch_size_rows_bucket", le="4.0") < steps
    jobs = 3 + 6  # the canary brief took 3 rounds (its keyword never appears)
    assert _value(after, "copygen_time_to_first_token_seconds_count") == jobs
    assert _value(after, "copygen_queue_wait_seconds_count") == jobs
    assert _value(after, "copygen_generated_tokens_total") > _value(
        before, "copygen_generated_tokens_total"
    )
    assert _value(after, "copygen_inter_token_latency_seconds_count") == steps
    assert _value(after, "copygen_ready") == 1
    assert _value(after, "copygen_draft_tokens_total", outcome="proposed") == 0  # fake runner
    assert _value(after, "copygen_prompt_tokens_reused_total") == 321
    assert _value(after, "copygen_queue_depth") == 0
    assert _value(after, "copygen_cache_l1_entries") == 7
    assert _value(after, "copygen_model_load_seconds") >= 0
    assert _value(after, "process_resident_memory_bytes") > 0
    names = {name for name, _ in after}
    assert all(name.startswith(("copygen_", "process_")) for name in names)


async def test_rejections_are_counted_by_reason() -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    app = _app(runner, max_queue=1, max_batch_size=2)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await _ready(c)
        body = {"product": "x", "variants": 1, "cache": "bypass"}
        running = asyncio.create_task(c.post("/v1/copy", json=body))
        while not runner.joins:
            await asyncio.sleep(0.001)
        queued = asyncio.create_task(c.post("/v1/copy", json=body))
        await asyncio.sleep(0.05)
        assert (await c.post("/v1/copy", json=body)).status_code == 429
        hang.set()
        await running
        await queued
        samples = await _scrape(c)
    assert _value(samples, "copygen_rejections_total", reason="queue_full") == 1
    assert _value(samples, "copygen_rejections_total", reason="deadline") == 0


async def test_responses_carry_server_timing() -> None:
    app = _app(FakeRunner())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await _ready(c)
        response = await c.post("/v1/copy", json={"product": "x", "variants": 1})
        timing = response.headers["server-timing"]
        names = [part.split(";")[0].strip() for part in timing.split(",")]
        assert names == list(response.json()["timings_ms"])
        assert "total" in names


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    }


def test_http_requests_are_labelled_by_template_and_status_class_and_scrapes_are_left_out() -> None:
    metrics = Metrics()
    metrics.observe_http("/v1/copy", "POST", 201, 0.2)
    metrics.observe_http("/v1/copy", "POST", 204, 0.1)
    metrics.observe_http(None, "GET", 404, 0.001)  # no route: never the raw path
    metrics.observe_http("/metrics", "GET", 200, 0.001)
    samples = _samples(metrics)
    assert _value(samples, "copygen_http_requests_total", handler="/v1/copy", method="POST",
                  status="2xx") == 2  # fmt: skip
    assert _value(samples, "copygen_http_requests_total", handler="none", method="GET",
                  status="4xx") == 1  # fmt: skip
    assert not [key for key in samples if ("handler", "/metrics") in key[1]]


def test_the_engine_sink_feeds_the_histograms_and_counters() -> None:
    metrics = Metrics()
    metrics.step(rows=12, seconds=0.03)
    metrics.job_done(queue_s=0.01, first_token_s=None, prompt_tokens=40, completion_tokens=9)
    metrics.job_done(queue_s=0.02, first_token_s=0.2, prompt_tokens=10, completion_tokens=1)
    metrics.backend_call("ok", 0.5, first_token_s=None)
    metrics.backend_error("status_5xx")
    metrics.breaker_changed("model", "open")
    samples = _samples(metrics)
    assert _value(samples, "copygen_batch_size_rows_bucket", le="12.0") == 1
    assert _value(samples, "copygen_batch_size_rows_bucket", le="8.0") == 0
    assert _value(samples, "copygen_queue_wait_seconds_count") == 2
    assert _value(samples, "copygen_time_to_first_token_seconds_count") == 1  # one had a token
    assert (_value(samples, "copygen_prompt_tokens_total"),
            _value(samples, "copygen_generated_tokens_total")) == (50, 10)  # fmt: skip
    assert _value(samples, "copygen_backend_request_duration_seconds_count", outcome="ok") == 1
    assert _value(samples, "copygen_backend_errors_total", reason="status_5xx") == 1
    assert _value(samples, "copygen_breaker_transitions_total", breaker="model",
                  state="open") == 1  # fmt: skip


def test_the_runtimes_figures_are_read_at_scrape_time_once_it_exists() -> None:
    metrics = Metrics()
    holder: list[Runtime] = []
    metrics.watch(lambda: holder[0] if holder else None)
    assert not [name for name, _ in _samples(metrics) if name == "copygen_ready"]
    holder.append(runtime(FakeRunner(), Settings(warmup=False)))
    samples = _samples(metrics)
    assert _value(samples, "copygen_ready") == 0  # built, not started
    assert _value(samples, "copygen_breaker_state", breaker="model") == 0
    assert _value(samples, "copygen_cache_l1_entries") == 0
    assert ("copygen_redis_up", ()) not in samples  # no Redis configured
    assert ("copygen_store_up", ()) in samples
