"""Faults induced for real below the engine (fake runner, real scheduler, real HTTP app):
out-of-memory splits, the model breaker, hung models, CPU fallback, memory shedding and
queue overflow. Rows of docs/reliability.md."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.domain import CachePolicy, CopyBrief
from copygen.engine.engine import Engine
from copygen.errors import CircuitOpen, GenerationFailed
from copygen.resilience.memory import MemoryGuard
from tests.builders import started_runtime
from tests.fakes import FakeRunner


@asynccontextmanager
async def _client(runner: FakeRunner, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    app: FastAPI = create_app(config, engine=Engine(config, runner))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        for _ in range(500):
            if (await c.get("/health")).json()["status"] != "starting":
                break
            await asyncio.sleep(0.01)
        yield c


async def test_out_of_memory_splits_the_batch_and_every_request_succeeds() -> None:
    runner = FakeRunner(oom_above=4)
    writer = await started_runtime(runner, max_batch_size=32)
    briefs = [CopyBrief(product=f"p{i}", variants=2, seed=i) for i in range(6)]  # 24 rows
    results = await writer.workflow.generate_many(briefs)
    assert all(len(r.variants) == 2 for r in results)
    assert runner.ooms >= 1
    stats = writer.default.snapshot().figures
    assert stats.oom_splits >= 1
    assert stats.batch_ceiling <= 4
    assert writer.default.snapshot().figures.oom_failures == 0
    assert max(runner.batch_sizes) <= 4
    assert writer.default.snapshot().breaker.state == "closed"
    # Same seeds, same text as without any split.
    clean = await started_runtime(FakeRunner(), max_batch_size=32)
    assert [r.variants for r in await clean.workflow.generate_many(briefs)] == [
        r.variants for r in results
    ]
    await writer.stop()
    await clean.stop()


async def test_out_of_memory_at_one_row_fails_and_repeated_failures_open_the_breaker() -> None:
    runner = FakeRunner(oom_above=0)
    writer = await started_runtime(runner, breaker_failures=2, breaker_reset_s=60)
    brief = CopyBrief(product="x", variants=1, cache=CachePolicy.BYPASS)
    for _ in range(2):
        with pytest.raises(GenerationFailed):
            await writer.workflow.generate(brief)
    assert writer.default.snapshot().breaker.state == "open"
    assert writer.default.snapshot().figures.oom_failures >= 1
    with pytest.raises(CircuitOpen) as refused:
        await writer.workflow.generate(brief)
    assert refused.value.retry_after_s is not None
    assert 1 <= refused.value.retry_after_s <= 60
    await writer.stop()


async def test_an_open_breaker_answers_503_but_serves_cached_copy_and_recovers() -> None:
    failing = threading.Event()
    runner = FakeRunner(fail_when=failing.is_set)
    async with _client(runner, breaker_failures=2, breaker_reset_s=0.3) as c:
        cached = {"product": "kept", "variants": 1}
        assert (await c.post("/v1/copy", json=cached)).status_code == 200
        failing.set()
        for i in range(2):
            failed = await c.post("/v1/copy", json={"product": f"f{i}", "variants": 1})
            assert failed.status_code == 503
            assert failed.json()["error"]["type"] == "generation_failed"
        refused = await c.post("/v1/copy", json={"product": "new", "variants": 1})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "circuit_open"
        assert int(refused.headers["retry-after"]) >= 1
        assert (await c.get("/health/ready")).status_code == 503
        assert (await c.get("/health/live")).status_code == 200
        hit = await c.post("/v1/copy", json=cached)
        assert (hit.status_code, hit.json()["cached"]) == (200, True)
        health = (await c.get("/health")).json()
        assert health["breakers"]["model"] == "open"
        assert health["status"] == "degraded"
        metrics = (await c.get("/metrics")).text
        assert 'copygen_breaker_state{breaker="model"} 2.0' in metrics
        assert 'copygen_rejections_total{reason="circuit_open"} 1.0' in metrics

        failing.clear()
        await asyncio.sleep(0.35)
        probe = await c.post("/v1/copy", json={"product": "probe", "variants": 1})
        assert probe.status_code == 200
        assert (await c.get("/health/ready")).status_code == 200


async def test_a_hung_model_answers_504_at_the_deadline_and_counts_for_the_breaker() -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    async with _client(runner, request_timeout_s=0.3, breaker_failures=1) as c:
        response = await c.post("/v1/copy", json={"product": "x", "variants": 1})
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "deadline_exceeded"
        health = (await c.get("/health")).json()
        assert health["breakers"]["model"] == "open"
        assert health["engine"]["queued_jobs"] == 0
        hang.set()


async def test_repeated_device_failures_fall_back_to_the_cpu() -> None:
    runner = FakeRunner(device="cuda", fail_when=lambda: True)
    async with _client(runner, breaker_failures=2, device_fallback=True) as c:
        for i in range(2):
            await c.post("/v1/copy", json={"product": f"f{i}", "variants": 1})
        for _ in range(100):
            if (await c.get("/health")).json()["degraded_to_cpu"]:
                break
            await asyncio.sleep(0.01)
        health = (await c.get("/health")).json()
        assert health["degraded_to_cpu"] is True
        assert health["model"]["device"] == "cpu"
        assert health["breakers"]["model"] == "closed"
        ok = await c.post("/v1/copy", json={"product": "after", "variants": 1})
        assert ok.status_code == 200


async def test_memory_above_the_high_mark_sheds_new_work_with_503() -> None:
    runner = FakeRunner()
    async with _client(runner, memory_high_bytes=1) as c:  # any process is above 1 byte
        for _ in range(100):
            if (await c.get("/health")).json()["memory"]["shedding"]:
                break
            await asyncio.sleep(0.01)
        response = await c.post("/v1/copy", json={"product": "x", "variants": 1})
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "memory_pressure"
        assert response.headers["retry-after"] == "5"
        for _ in range(100):  # emptied on the model thread, soon after shedding starts
            if runner.released:
                break
            await asyncio.sleep(0.01)
        assert runner.released >= 1  # the accelerator cache was emptied
        assert "copygen_memory_shedding 1.0" in (await c.get("/metrics")).text


def test_the_memory_guard_has_hysteresis() -> None:
    readings = iter([100, 95, 89, 95, 101])
    guard = MemoryGuard(
        rss_high_bytes=100, device_high_ratio=1.0, read_device=dict, relieve=lambda: None
    )
    guard.read = lambda: type("R", (), {  # type: ignore[method-assign]
        "rss_bytes": next(readings), "device_used_bytes": 0, "device_total_bytes": 0
    })()  # fmt: skip
    assert [guard.check() for _ in range(5)] == [True, True, False, False, True]
    assert guard.shed_episodes == 2


async def test_a_thousand_requests_against_a_small_queue_get_fast_429s_and_no_other_5xx() -> None:
    runner = FakeRunner(step_delay_s=0.002)
    async with _client(runner, max_queue=64, max_batch_size=8) as c:
        bodies = [
            {"product": f"p{i}", "variants": 1, "cache": "bypass", "max_new_tokens": 4}
            for i in range(1000)
        ]
        responses = await asyncio.gather(*(c.post("/v1/copy", json=b) for b in bodies))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429}
        rejected = [r for r in responses if r.status_code == 429]
        assert rejected
        assert statuses.count(200) >= 64
        assert all(r.headers["retry-after"].isdigit() for r in rejected)
        assert all(r.json()["error"]["type"] == "queue_full" for r in rejected)
        health = (await c.get("/health")).json()
        assert health["engine"]["queued_jobs"] == 0
        assert health["engine"]["running_rows"] == 0
