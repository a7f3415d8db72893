"""Real services built on the fake runner, for tests above the engine."""

from __future__ import annotations

from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.service.copywriter import Copywriter
from tests.fakes import FakeRunner


def copywriter(runner: FakeRunner, settings: Settings) -> Copywriter:
    """A copywriter (real engine, scheduler and cache) on ``runner``; not started."""
    return Copywriter.from_settings(settings, Engine(settings, runner))


async def started_copywriter(runner: FakeRunner, **settings: object) -> Copywriter:
    """A started copywriter on ``runner`` with ``Settings(warmup=False, **settings)``."""
    writer = copywriter(runner, Settings(warmup=False, **settings))  # type: ignore[arg-type]
    await writer.start()
    return writer
