"""The engine without HTTP, on a fake runner."""

from __future__ import annotations

import pytest

from copygen.config import Settings
from copygen.domain import CopyBrief
from copygen.engine.engine import Engine
from copygen.errors import NotReady
from tests.fakes import FakeRunner


async def test_generate_copy_asks_for_n_rows_with_channel_budget() -> None:
    runner = FakeRunner(lambda request, row: ["Go Solar Today", "go solar today!", "Hike On"][row])
    engine = Engine(Settings(warmup=False), runner)
    await engine.start()
    result = await engine.generate_copy(
        CopyBrief(product="charger", channel="sms", variants=3, seed=5, keywords=("solar",))
    )
    [[request]] = runner.calls
    assert request.n == 3
    assert request.sampling.seed == 5
    assert request.sampling.max_new_tokens == 56  # the sms channel's budget
    texts = [v.text.casefold().rstrip("!") for v in result.variants]
    assert texts == ["go solar today", "hike on"]  # the near duplicate is gone
    assert result.variants[1].keywords_missing == ("solar",)
    assert result.requested == 3
    assert result.id.startswith("copy-")
    await engine.stop()


async def test_max_new_tokens_from_the_brief_wins() -> None:
    runner = FakeRunner()
    engine = Engine(Settings(warmup=False), runner)
    await engine.start()
    await engine.generate_copy(CopyBrief(product="x", max_new_tokens=7))
    assert runner.calls[0][0].sampling.max_new_tokens == 7


async def test_warmup_runs_one_generation_before_ready() -> None:
    runner = FakeRunner()
    engine = Engine(Settings(warmup=True), runner)
    assert not engine.ready
    await engine.start()
    assert engine.ready
    assert len(runner.calls) == 1


async def test_not_ready_engine_refuses_work() -> None:
    engine = Engine(Settings(warmup=False), FakeRunner())
    with pytest.raises(NotReady):
        await engine.generate_copy(CopyBrief(product="x"))
