"""The application factory. The lifespan owns the engine: load in the background, stop at exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from copygen import __version__
from copygen.api.errors import install_error_handlers
from copygen.api.middleware import RequestIdMiddleware
from copygen.api.routes import catalog, copy, health, openai
from copygen.config import Settings
from copygen.engine.engine import Engine

log = logging.getLogger("copygen.api")

STARTUP_CANCEL_TIMEOUT_S = 5.0


def build_engine(settings: Settings) -> Engine:
    """The production engine: the transformers runner (torch is imported only here)."""
    from copygen.engine.runner import TransformersRunner

    runner = TransformersRunner(
        settings.model,
        cache_dir=settings.model_cache_dir,
        device=settings.device,
        dtype=settings.dtype,
        threads=settings.torch_threads,
        prefix_cache=settings.prefix_cache,
    )
    return Engine(settings, runner)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app. ``engine`` lets tests inject one built on a fake runner."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app_engine = engine or build_engine(settings)
        app.state.engine = app_engine
        # Load in the background so liveness answers while the model loads.
        starting = asyncio.create_task(_start_quietly(app_engine), name="copygen-engine-start")
        try:
            yield
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(starting, STARTUP_CANCEL_TIMEOUT_S)
            await app_engine.stop()

    app = FastAPI(
        title="copygen",
        version=__version__,
        summary="Marketing copy from a language model, checked against each channel's rules.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for module in (copy, openai, catalog, health):
        app.include_router(module.router)
    app.add_middleware(RequestIdMiddleware)
    return app


async def _start_quietly(engine: Engine) -> None:
    # A failed start leaves the engine not-ready with the reason in /health.
    with contextlib.suppress(Exception):
        await engine.start()
