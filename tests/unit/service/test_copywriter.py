"""The copy workflow without HTTP, on a fake runner."""

from __future__ import annotations

import asyncio

import pytest

from copygen.config import Settings
from copygen.domain import CopyBrief, GenerationRequest
from copygen.errors import Draining, NotReady
from tests.builders import runtime, started_runtime
from tests.fakes import FakeRunner, on_topic, spelled


async def test_first_round_oversamples_with_the_channel_budget() -> None:
    runner = FakeRunner(lambda request, row: f"Solar deal take {spelled(row)}")
    writer = await started_runtime(runner)
    result = await writer.workflow.generate(
        CopyBrief(product="charger", channel="sms", variants=3, seed=5, keywords=("solar",))
    )
    [[request]] = runner.calls
    assert request.n == 6
    assert request.sampling.seed == 5
    assert request.sampling.max_new_tokens == 56  # the sms channel's budget
    assert request.prefix == ""
    assert len(result.variants) == 3
    assert result.rounds == 1


async def test_only_failing_slots_are_regenerated_with_keyword_priming() -> None:
    def reply(request: GenerationRequest, row: int) -> str:
        if request.prefix:
            return f" powers hike {spelled(row)}"  # the runner puts the prefix in front
        return ["Go solar today", "Charge outdoors now", "Power every single trail"][row % 3]

    runner = FakeRunner(reply)
    writer = await started_runtime(runner)
    result = await writer.workflow.generate(
        CopyBrief(product="x", variants=3, keywords=("solar",), seed=9)
    )
    first, second = runner.calls
    assert first[0].n == 6
    assert second[0].n == 4  # two slots still missing a passing variant, oversampled
    assert second[0].prefix == "Solar"
    assert second[0].sampling.seed != first[0].sampling.seed
    assert result.rounds == 2
    assert all(not v.keywords_missing for v in result.variants)
    assert len(result.variants) == 3


async def test_hard_failures_are_never_returned_and_shortfall_is_explicit() -> None:
    runner = FakeRunner(lambda request, row: "A long headline nobody could ever cut short")
    writer = await started_runtime(runner, max_rounds=2)
    result = await writer.workflow.generate(CopyBrief(product="x", variants=2))
    assert result.variants == []
    assert result.requested == 2
    assert result.rounds == 2


async def test_banned_and_brand_safety_words_are_filtered() -> None:
    texts = ["Cheap solar power", "Damn fine charger", "Solar for hikers"]
    runner = FakeRunner(lambda request, row: texts[row % 3])
    writer = await started_runtime(runner, max_rounds=1)
    result = await writer.workflow.generate(
        CopyBrief(product="x", variants=3, banned_words=("cheap",))
    )
    assert [v.text for v in result.variants] == ["Solar for hikers"]


async def test_brand_safety_list_is_configurable() -> None:
    runner = FakeRunner(lambda request, row: ["Damn fine charger", "Zap charger"][row % 2])
    writer = await started_runtime(runner, max_rounds=1, brand_safety_words="zap")
    result = await writer.workflow.generate(CopyBrief(product="x", variants=2))
    assert [v.text for v in result.variants] == ["Damn fine charger"]


async def test_many_briefs_share_one_runner_call_per_round() -> None:
    runner = FakeRunner(lambda request, row: f"{on_topic(request, row)} idea {'abcdefgh'[row]}")
    writer = await started_runtime(runner)
    products = ("kettle", "lamp", "teapot", "blanket", "candle")
    briefs = [CopyBrief(product=product, variants=2, seed=i) for i, product in enumerate(products)]
    results = await writer.workflow.generate_many(briefs)
    assert len(runner.calls) == 1
    assert len(runner.calls[0]) == 5
    assert [len(r.variants) for r in results] == [2] * 5


async def test_max_new_tokens_from_the_brief_wins() -> None:
    runner = FakeRunner()
    writer = await started_runtime(runner)
    await writer.workflow.generate(CopyBrief(product="x", max_new_tokens=7))
    assert runner.calls[0][0].sampling.max_new_tokens == 7


async def test_not_ready_engine_refuses_work() -> None:
    writer = runtime(FakeRunner(), Settings(warmup=False))
    with pytest.raises(NotReady):
        await writer.workflow.generate(CopyBrief(product="x"))


async def test_first_token_time_is_within_the_total() -> None:
    writer = await started_runtime(FakeRunner(whole=False))
    result = await writer.workflow.generate(CopyBrief(product="x", variants=2))
    timings = result.timings_ms
    assert 0 <= timings["first_token"] <= timings["total"]
    assert timings["queue"] + timings["generation"] <= timings["total"] + 1


async def test_a_request_in_flight_when_draining_starts_still_runs_its_later_rounds() -> None:
    def reply(request: GenerationRequest, row: int) -> str:
        writer.begin_drain()  # SIGTERM arrives while round one decodes
        return " powers every hike" if request.prefix else "Power every hike"

    runner = FakeRunner(reply)
    writer = await started_runtime(runner)
    result = await writer.workflow.generate(CopyBrief(product="x", variants=1, keywords=("solar",)))
    assert len(runner.calls) == 2  # round two (keyword priming) was not refused
    assert [v.text for v in result.variants] == ["Solar powers every hike"]
    with pytest.raises(Draining):  # a new request is
        await writer.workflow.generate(CopyBrief(product="y", variants=1))


async def test_relevance_ranks_what_the_brief_is_about_first() -> None:
    texts = ["Pizza night for everyone", "Solar chargers for hikers"]
    runner = FakeRunner(lambda request, row: texts[row % 2])
    plain = await started_runtime(runner, max_rounds=1)
    # Relevance ranking alone: the worth checks (which reject the pizza line) are off.
    brief = CopyBrief(
        product="solar charger",
        audience="hikers",
        variants=2,
        cache="bypass",
        grounding="off",  # type: ignore[arg-type]
    )
    unranked = await plain.workflow.generate(brief)
    assert {v.text for v in unranked.variants} == set(texts)
    assert all(v.relevance is None for v in unranked.variants)
    assert not runner.scored

    ranked = await (await started_runtime(runner, max_rounds=1, relevance=True)).workflow.generate(
        brief
    )
    assert [v.text for v in ranked.variants] == [texts[1], texts[0]]
    [requests] = runner.scored
    assert len(requests) == 4  # two texts, each with and without the brief
    on_topic = ranked.variants[0].relevance
    assert on_topic is not None
    assert on_topic > 0
    assert "relevance" in ranked.timings_ms


@pytest.mark.parametrize("early_stop", [True, False])
async def test_a_briefs_rows_stop_once_enough_variants_pass(early_stop: bool) -> None:
    def reply(request: GenerationRequest, row: int) -> str:
        if row < 3:
            return f"Solar deal take {spelled(row + 1)}"
        return "Solar " + " ".join(["slowly"] * 30)  # rows that would run much longer

    runner = FakeRunner(reply, whole=False)
    writer = await started_runtime(runner, early_stop=early_stop)
    brief = CopyBrief(product="charger", channel="sms", variants=3, seed=5, keywords=("solar",))
    result = await writer.workflow.generate(brief)
    assert sorted(v.text for v in result.variants) == [
        "Solar deal take one", "Solar deal take three", "Solar deal take two",
    ]  # fmt: skip
    assert result.rounds == 1
    job = result.jobs[0]
    if early_stop:
        while len(runner.dropped) < 3:
            await asyncio.sleep(0.001)
        assert sorted(runner.dropped) == [(job, 0, 3), (job, 0, 4), (job, 0, 5)]
        assert result.usage.completion_tokens < 31  # the finished rows' tokens only
    else:
        assert runner.dropped == []
        assert result.usage.completion_tokens > 3 * 31
    await writer.stop()
