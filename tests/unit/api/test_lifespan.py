"""The app's lifespan: the runtime is built when the app starts and started in the background
(the app answers while the model loads), a failed start leaves it up but not ready, exit stops
everything even mid-load, and a warm-up file that cannot be read changes nothing."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from copygen.api.lifespan import lifespan
from copygen.config import Settings
from copygen.engine.protocols import RunnerInfo
from copygen.service.runtime import Runtime
from tests.builders import runtime
from tests.fakes import FakeRunner


class BrokenRunner(FakeRunner):
    def load(self) -> RunnerInfo:
        raise RuntimeError("no such model")


def _start(runner: FakeRunner, **settings: object) -> tuple[FastAPI, list[Runtime]]:
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    built: list[Runtime] = []

    def build() -> Runtime:
        built.append(runtime(runner, config))
        return built[-1]

    return FastAPI(lifespan=lifespan(config, build)), built


async def _until(condition: Callable[[], object], limit_s: float = 2.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_the_runtime_is_built_at_start_and_loads_in_the_background() -> None:
    gate = threading.Event()
    app, built = _start(FakeRunner(gate=gate))
    assert built == []  # nothing is built before the app starts
    async with app.router.lifespan_context(app):
        [running] = built
        assert app.state.runtime is running
        assert not running.default.ready  # started, not awaited: the model is loading
        gate.set()
        assert await _until(lambda: running.default.ready)
    assert not running.default.ready  # stopped at exit


async def test_a_failed_start_leaves_the_app_up_and_not_ready() -> None:
    app, built = _start(BrokenRunner())
    async with app.router.lifespan_context(app):
        assert await _until(lambda: built[0].default.snapshot().sections["model"].get("error"))
        assert not built[0].default.ready


async def test_exit_while_the_model_loads_does_not_wait_for_it() -> None:
    gate = threading.Event()
    app, _ = _start(FakeRunner(gate=gate))
    started = time.monotonic()
    async with app.router.lifespan_context(app):
        pass
    assert time.monotonic() - started < 2
    gate.set()


async def test_an_unreadable_warm_up_file_is_logged_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = FakeRunner()
    app, built = _start(runner, cache_warmup_file=tmp_path / "missing.jsonl")
    with caplog.at_level(logging.WARNING, logger="copygen.api"):
        async with app.router.lifespan_context(app):
            assert await _until(lambda: "warm-up" in caplog.text)
            assert built[0].default.ready
    assert "cache warm-up file unreadable: FileNotFoundError" in caplog.text
    assert runner.calls == []
