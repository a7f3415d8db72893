"""The app's lifespan: it builds the runtime (service/runtime.py: the cache, the generators,
the store, the jobs) and starts it in the background so liveness answers while the model
loads; it stops everything at exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI
from pydantic import ValidationError

from copygen.api.schemas import CopyRequest
from copygen.config import Settings
from copygen.errors import CopygenError
from copygen.service.runtime import Runtime

log = logging.getLogger("copygen.api")

STARTUP_CANCEL_TIMEOUT_S = 5.0

Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def lifespan(settings: Settings, build: Callable[[], Runtime]) -> Lifespan:
    """A lifespan that builds the runtime with ``build`` when the app starts."""

    @contextlib.asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        runtime = build()
        app.state.runtime = runtime
        await runtime.start_jobs()
        starting = asyncio.create_task(
            _start_quietly(runtime, settings.cache_warmup_file), name="copygen-engine-start"
        )
        try:
            yield
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(starting, STARTUP_CANCEL_TIMEOUT_S)
            await runtime.stop()

    return run


async def _start_quietly(runtime: Runtime, warmup_file: Path | None) -> None:
    # A failed start leaves the generator not ready with the reason in /health.
    try:
        await runtime.start()
    except Exception:  # noqa: BLE001
        return
    if warmup_file is not None:
        await _pregenerate(runtime, warmup_file)


async def _pregenerate(runtime: Runtime, path: Path) -> None:
    """Generate the briefs of a warm-up file (JSON lines, /v1/copy bodies) into the cache.
    Lines that are not valid briefs are skipped and counted, never shown."""
    briefs, skipped = [], 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        log.warning("cache warm-up file unreadable: %s", type(exc).__name__)
        return
    for line in lines:
        if not line.strip():
            continue
        try:
            request = CopyRequest.model_validate_json(line)
        except ValidationError:
            skipped += 1
            continue
        briefs.append(request.to_brief())
    try:
        new = await runtime.pregenerate(briefs)
    except CopygenError as exc:
        log.warning("cache warm-up stopped: %s", exc.type)
        return
    log.info("cache warm-up: %d briefs, %d generated, %d lines skipped", len(briefs), new, skipped)
