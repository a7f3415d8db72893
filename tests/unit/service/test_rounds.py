"""Generation rounds on an engine over a fake runner: later rounds ask only for the missing
slots, the deadline decides whether another round runs, and the relevance pass joins the
ranking when it can and is skipped when it cannot."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import pytest

from copygen.config import Settings
from copygen.deadline import Deadline
from copygen.domain import CopyBrief, GenerationRequest, ScoreRequest
from copygen.engine.engine import Engine
from copygen.errors import DeadlineExceeded, GenerationFailed
from copygen.service.rounds import RoundPolicy, write_rounds
from tests.fakes import FakeRunner, spelled

BRIEF = CopyBrief(product="solar charger", channel="sms", variants=2, keywords=("sun",), seed=3)


def _policy(
    *,
    max_rounds: int = 3,
    relevance: bool = False,
    floor: float | None = None,
    pool: float = 1.0,
    rows: int = 0,
) -> RoundPolicy:
    return RoundPolicy(
        max_rounds, (), "strict", early_stop=False, relevance=relevance, relevance_floor=floor,
        selection_pool=pool, selection_rows=rows,
    )  # fmt: skip


def one_with_the_keyword(request: GenerationRequest, row: int) -> str:
    """Round 1 (no prefix): only row 0 uses the keyword; primed rounds open with it."""
    if request.prefix or row == 0:
        return f" solar charger for the sun {spelled(row + 1)}"
    return f"A solar charger for the trail {spelled(row + 1)}"


async def _engine(runner: FakeRunner) -> Engine:
    engine = Engine(Settings(warmup=False), runner)
    await engine.start()
    return engine


async def test_a_second_round_asks_only_for_the_missing_slot_primed_with_a_keyword() -> None:
    runner = FakeRunner(one_with_the_keyword)
    engine = await _engine(runner)
    [result] = await write_rounds(engine, [BRIEF], _policy(), Deadline.within(10))
    assert result.rounds == 2
    [[first], [second]] = runner.calls
    assert (first.n, first.prefix) == (4, "")
    assert (second.n, second.prefix) == (2, "Sun")
    assert len(result.variants) == 2
    assert all("sun" in v.text.lower() for v in result.variants)
    assert len(result.jobs) == 2
    assert {"queue", "generation", "total"} <= set(result.timings_ms)
    await engine.stop()


async def test_no_more_rounds_than_the_policy_allows() -> None:
    runner = FakeRunner(lambda request, row: f"A solar charger for the trail {spelled(row)}")
    engine = await _engine(runner)
    [result] = await write_rounds(engine, [BRIEF], _policy(max_rounds=2), Deadline.within(10))
    assert result.rounds == len(runner.calls) == 2
    assert len(result.variants) == 2  # the keyword is a soft rule: the best of what was written
    await engine.stop()


async def test_another_round_runs_only_when_the_deadline_leaves_time_for_it() -> None:
    runner = FakeRunner(one_with_the_keyword, step_delay_s=0.2)
    engine = await _engine(runner)
    [result] = await write_rounds(engine, [BRIEF], _policy(), Deadline.within(0.35))
    assert result.rounds == 1  # round 1 took longer than what was left
    assert len(result.variants) == 2
    await engine.stop()


async def test_a_first_round_out_of_time_is_deadline_exceeded() -> None:
    hang = threading.Event()
    engine = await _engine(FakeRunner(hang=hang))
    with pytest.raises(DeadlineExceeded):
        await write_rounds(engine, [BRIEF], _policy(), Deadline.within(0.1))
    hang.set()
    await engine.stop()


async def test_the_relevance_pass_scores_each_shortlist_in_one_call() -> None:
    runner = FakeRunner(one_with_the_keyword)
    engine = await _engine(runner)
    other = CopyBrief(product="solar lamp", channel="sms", variants=1, seed=4)
    results = await write_rounds(
        engine, [BRIEF, other], _policy(relevance=True), Deadline.within(10)
    )
    assert len(runner.scored) == 1
    assert all(v.relevance is not None for r in results for v in r.variants)
    assert all("relevance" in r.timings_ms for r in results)
    await engine.stop()


class _CannotScore(FakeRunner):
    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        raise GenerationFailed("relevance scoring needs the in-process model")


async def test_a_failed_relevance_pass_still_returns_the_ranked_copy() -> None:
    engine = await _engine(_CannotScore(one_with_the_keyword))
    [result] = await write_rounds(engine, [BRIEF], _policy(relevance=True), Deadline.within(10))
    assert len(result.variants) == 2
    assert all(v.relevance is None for v in result.variants)
    await engine.stop()


async def test_a_relevance_floor_fails_every_round_candidate_below_it() -> None:
    always = "A solar charger for the sun {}"
    runner = FakeRunner(lambda request, row: always.format(spelled(row + 1)))
    engine = await _engine(runner)
    [low] = await write_rounds(engine, [BRIEF], _policy(floor=-5.0), Deadline.within(10))
    assert (low.rounds, len(runner.scored), len(low.variants)) == (1, 1, 2)  # all above
    assert all(v.relevance is not None for v in low.variants)  # the gate's scores rank them
    runner.scored.clear()
    [high] = await write_rounds(engine, [BRIEF], _policy(floor=5.0), Deadline.within(10))
    # Nothing clears the floor: the candidates are scored once (later rounds write the same
    # texts), fail every round and are regenerated, and the brief ends short rather than
    # returning them.
    assert (high.rounds, len(runner.scored), high.variants) == (3, 1, [])
    await engine.stop()


def near_and_far(request: GenerationRequest, row: int) -> str:
    """Every row passes; even rows say the brief's words, odd rows little of them."""
    if row % 2:
        return f"Bright sun over quiet hills at {spelled(row + 1)} sharp"
    return f"A solar charger for the sun, model {spelled(row + 1)}"


async def test_an_idle_engine_looks_for_a_wider_pool_and_returns_the_likeliest() -> None:
    runner = FakeRunner(near_and_far)
    engine = await _engine(runner)
    [result] = await write_rounds(engine, [BRIEF], _policy(pool=2.0, rows=16), Deadline.within(10))
    [[first]] = runner.calls
    assert first.n == 8  # twice the pool of 2 x 2 variants
    assert first.logprobs
    assert runner.scored == []  # the likelihood came with the rows: no scoring pass
    assert len(result.variants) == 2
    # The fake's likelihood is the share of a text's words the prompt holds: the on-topic
    # rows are likelier, and they are the ones returned.
    assert all("solar charger" in v.text for v in result.variants)
    assert all(v.likelihood is not None and v.relevance is None for v in result.variants)
    assert "relevance" not in result.timings_ms
    await engine.stop()


async def test_no_wider_pool_past_the_row_budget_or_without_likelihoods() -> None:
    runner = FakeRunner(near_and_far)
    engine = await _engine(runner)
    await write_rounds(engine, [BRIEF], _policy(pool=2.0, rows=7), Deadline.within(10))
    [[first]] = runner.calls
    assert first.n == 4  # 8 rows would pass the budget of 7: twice the 2 variants

    original = engine.snapshot
    engine.snapshot = lambda: replace(original(), likelihoods=False)  # type: ignore[method-assign]
    runner.joins.clear()
    await write_rounds(engine, [BRIEF], _policy(pool=2.0, rows=16), Deadline.within(10))
    [[first]] = runner.calls
    assert first.n == 4
    await engine.stop()


async def test_long_copy_is_not_widened() -> None:
    runner = FakeRunner(near_and_far)
    engine = await _engine(runner)
    post = replace(BRIEF, channel="x_post")
    await write_rounds(engine, [post], _policy(pool=2.0, rows=16), Deadline.within(10))
    assert runner.calls[0][0].n == 4  # twice the 2 variants: its rows are the costly ones
    await engine.stop()
