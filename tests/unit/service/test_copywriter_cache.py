"""The copywriter's cache path on a fake runner: hits, policies, single-flight, tenants."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

import httpx

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.domain import CachePolicy, CopyBrief
from copygen.engine.engine import Engine
from tests.builders import started_runtime
from tests.fakes import FakeRunner, on_topic

BRIEF = CopyBrief(product="solar charger", channel="sms", variants=2, seed=1)


async def test_a_repeated_brief_is_an_l1_hit_without_model_work() -> None:
    runner = FakeRunner()
    writer = await started_runtime(runner)
    first = await writer.workflow.generate(BRIEF)
    second = await writer.workflow.generate(BRIEF)
    assert len(runner.calls) == 1
    assert (first.cached, first.cache_tier) == (False, None)
    assert (second.cached, second.cache_tier) == (True, "l1")
    assert [v.text for v in second.variants] == [v.text for v in first.variants]
    assert second.id != first.id
    assert second.usage.completion_tokens == 0  # this request computed nothing
    assert set(second.timings_ms) == {"cache", "total"}
    await writer.stop()


async def test_refresh_regenerates_and_replaces_and_bypass_leaves_no_trace() -> None:
    counter = iter(range(1000))
    runner = FakeRunner(lambda request, row: on_topic(request, next(counter)))
    writer = await started_runtime(runner)
    first = await writer.workflow.generate(BRIEF)
    refreshed = await writer.workflow.generate(
        dataclasses.replace(BRIEF, cache=CachePolicy.REFRESH)
    )
    again = await writer.workflow.generate(BRIEF)
    assert not refreshed.cached
    assert refreshed.variants != first.variants
    assert again.cached
    assert again.variants == refreshed.variants

    other = dataclasses.replace(BRIEF, product="kettle", cache=CachePolicy.BYPASS)
    await writer.workflow.generate(other)
    calls = len(runner.calls)
    used = await writer.workflow.generate(dataclasses.replace(other, cache=CachePolicy.USE))
    assert not used.cached
    assert len(runner.calls) == calls + 1
    await writer.stop()


async def test_twenty_identical_concurrent_misses_run_one_generation() -> None:
    runner = FakeRunner(step_delay_s=0.01)
    writer = await started_runtime(runner)
    results = await asyncio.gather(*(writer.workflow.generate(BRIEF) for _ in range(20)))
    assert len(runner.calls) == 1
    assert len({tuple(v.text for v in r.variants) for r in results}) == 1
    assert len({r.id for r in results}) == 20
    assert sum(1 for r in results if r.usage.completion_tokens) == 20  # all came from a generation
    assert writer.cache.flights.shared_total == 19
    assert len(writer.cache.flights) == 0
    await writer.stop()


async def test_followers_generate_themselves_when_the_leader_goes_away() -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    writer = await started_runtime(runner)
    leader = asyncio.create_task(writer.workflow.generate(BRIEF))
    while not runner.joins:
        await asyncio.sleep(0.001)
    follower = asyncio.create_task(writer.workflow.generate(BRIEF))
    await asyncio.sleep(0.01)
    leader.cancel()
    hang.set()
    result = await follower
    assert len(result.variants) == 2
    assert leader.cancelled()
    assert writer.cache.flights.shared_total == 1
    await writer.stop()


async def test_tenants_never_share_entries() -> None:
    runner = FakeRunner()
    writer = await started_runtime(runner)
    await writer.workflow.generate_many([BRIEF], tenant="a")
    [b] = await writer.workflow.generate_many([BRIEF], tenant="b")
    [a_again] = await writer.workflow.generate_many([BRIEF], tenant="a")
    assert not b.cached
    assert a_again.cached
    assert len(runner.calls) == 2
    await writer.stop()


async def test_a_batch_mixes_hits_and_one_shared_generation_for_the_misses() -> None:
    runner = FakeRunner()
    writer = await started_runtime(runner)
    await writer.workflow.generate(BRIEF)
    other = dataclasses.replace(BRIEF, product="kettle")
    results = await writer.workflow.generate_many([BRIEF, other, other])
    assert [r.cached for r in results] == [True, False, False]
    assert len(runner.calls) == 2
    assert len(runner.calls[1]) == 1  # the duplicate in the batch shared the generation
    await writer.stop()


async def test_cache_routes_report_and_invalidate() -> None:
    config = Settings(warmup=False)
    app = create_app(config, engine=Engine(config, FakeRunner()))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        while (await c.get("/health/ready")).status_code != 200:
            await asyncio.sleep(0.01)
        sms = {"product": "kettle", "channel": "sms", "variants": 1}
        email = {"product": "kettle", "channel": "email_subject", "variants": 1}
        for body in (sms, sms, email):
            await c.post("/v1/copy", json=body)
        hit = await c.post("/v1/copy", json=sms)
        assert (hit.json()["cached"], hit.json()["cache_tier"]) == (True, "l1")
        stats = (await c.get("/v1/cache/stats")).json()
        assert stats["hits"] == {"l1": 2, "l2": 0}
        assert stats["misses"] == 2
        assert stats["hit_rate"] == 0.5
        assert stats["l1"]["entries"] == 2
        assert stats["l2"] is None

        bad = await c.delete("/v1/cache", params={"channel": "fax"})
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "channel"
        deleted = await c.delete("/v1/cache", params={"channel": "sms"})
        assert deleted.json() == {"deleted": {"l1": 1, "l2": 0}}
        assert not (await c.post("/v1/copy", json=sms)).json()["cached"]
        assert (await c.post("/v1/copy", json=email)).json()["cached"]
        assert (await c.delete("/v1/cache")).json() == {"deleted": {"l1": 2, "l2": 0}}
        assert (await c.get("/v1/cache/stats")).json()["l1"]["entries"] == 0


def test_the_fast_json_response_matches_the_documented_model() -> None:
    import json

    from copygen.api.schemas import CopyResponse, copy_response
    from copygen.domain import CopyResult, Usage, Variant

    result = CopyResult(
        id="copy-1",
        model="m",
        channel="sms",
        variants=[Variant("Sol’s “deal” 🌞", 14, 160, True, ("solar",), 0.75)],
        requested=3,
        rounds=2,
        cached=True,
        cache_tier="l2",
        usage=Usage(3, 4),
        timings_ms={"cache": 0.5, "total": 0.6},
    )
    fast = json.loads(copy_response(result).body)
    assert fast == json.loads(CopyResponse.from_result(result).model_dump_json())
    assert CopyResponse.model_validate(fast).delivered == 1


async def test_a_warm_up_file_is_generated_into_the_cache_at_start(tmp_path: Path) -> None:
    import json

    lines = [
        json.dumps({"product": "kettle", "variants": 1}),
        "not json at all",
        json.dumps({"product": "", "variants": 1}),  # invalid: skipped
        json.dumps({"product": "toaster", "channel": "sms", "variants": 1}),
    ]
    warmup = tmp_path / "briefs.jsonl"
    warmup.write_text("\n".join(lines) + "\n")
    runner = FakeRunner()
    config = Settings(warmup=False, cache_warmup_file=warmup)
    app = create_app(config, engine=Engine(config, runner))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        for _ in range(200):
            if len(app.state.runtime.cache.l1) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(runner.calls) == 1  # both briefs in one shared generation
        hit = await c.post("/v1/copy", json={"product": "toaster", "channel": "sms", "variants": 1})
        assert hit.json()["cache_tier"] == "l1"
