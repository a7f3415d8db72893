"""The engine without copy or HTTP, on a fake runner."""

from __future__ import annotations

from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.fakes import FakeRunner


async def test_warmup_runs_one_generation_before_ready() -> None:
    runner = FakeRunner()
    engine = Engine(Settings(warmup=True), runner)
    assert not engine.ready
    await engine.start()
    assert engine.ready
    assert len(runner.calls) == 1
