"""Real services built on the fake runner, for tests above the engine."""

from __future__ import annotations

from fastapi import FastAPI

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.service.runtime import Runtime
from tests.fakes import FakeRunner


def runtime(runner: FakeRunner, settings: Settings) -> Runtime:
    """A runtime (real engine, scheduler, cache and copy workflow) on ``runner``; not
    started."""
    return Runtime.from_settings(settings, Engine(settings, runner))


async def started_runtime(runner: FakeRunner, **settings: object) -> Runtime:
    """A started runtime on ``runner`` with ``Settings(warmup=False, **settings)``."""
    built = runtime(runner, Settings(warmup=False, **settings))  # type: ignore[arg-type]
    await built.start()
    return built


def app(runner: FakeRunner, **settings: object) -> FastAPI:
    """The whole app on ``runner`` with ``Settings(warmup=False, **settings)``; not started."""
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    return create_app(config, engine=Engine(config, runner))
