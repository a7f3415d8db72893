"""The application factory. The lifespan owns the engine: load in the background, stop at exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import ValidationError

from copygen import __version__
from copygen.api.drain import DrainMiddleware
from copygen.api.errors import install_error_handlers
from copygen.api.fastpath import CopyHitFastPath
from copygen.api.middleware import RequestIdMiddleware
from copygen.api.ratelimit import Limiter, RateLimitMiddleware
from copygen.api.routes import admin, catalog, copy, health, openai
from copygen.api.routes import metrics as metrics_route
from copygen.api.schemas import CopyRequest, ErrorBody
from copygen.api.security import AuthMiddleware, BodyLimitMiddleware, parse_networks
from copygen.apikeys import KeyRing, parse_api_keys
from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.errors import CopygenError
from copygen.observability.logging import RequestLogMiddleware
from copygen.observability.metrics import Metrics

log = logging.getLogger("copygen.api")

STARTUP_CANCEL_TIMEOUT_S = 5.0
#: Answers any route may give (from the middleware: auth, limits, body cap, draining, faults),
#: documented so clients and schema-driven tools know them.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "malformed JSON"),
        (401, "missing or invalid API key"),
        (403, "the route needs an admin key"),
        (413, "request body over COPYGEN_MAX_BODY_BYTES"),
        (422, "validation error"),
        (429, "queue full or rate limit exceeded (Retry-After)"),
        (431, "Authorization header too large"),
        (503, "not ready, draining, breaker open, memory pressure or generation failed"),
        (504, "deadline exceeded"),
    )
}


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
        fused_forward=settings.fused_forward,
        speculative_tokens=settings.speculative_tokens,
        speculative_shared=settings.speculative_shared,
    )
    return Engine(settings, runner)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """Build the app. ``engine`` lets tests inject one built on a fake runner."""
    settings = settings or Settings()

    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app_engine = engine or build_engine(settings)
        app_engine.metrics = metrics
        app.state.engine = app_engine
        # Load in the background so liveness answers while the model loads.
        starting = asyncio.create_task(
            _start_quietly(app_engine, settings.cache_warmup_file), name="copygen-engine-start"
        )
        try:
            yield
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(starting, STARTUP_CANCEL_TIMEOUT_S)
            await app_engine.stop()

    docs = settings.docs_enabled
    app = FastAPI(
        title="copygen",
        version=__version__,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        summary="Marketing copy from a language model, checked against each channel's rules.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    metrics.info.labels(__version__, settings.model).set(1)
    metrics.watch(lambda: getattr(app.state, "engine", None))
    install_error_handlers(app)
    for module in (copy, openai, catalog, admin, health, metrics_route):
        app.include_router(module.router, responses=COMMON_ERRORS)
    # Innermost first: the fast path runs after every other middleware.
    app.add_middleware(CopyHitFastPath, engine=lambda: getattr(app.state, "engine", None))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=Limiter(settings.redis_url, timeout_s=settings.redis_timeout_s),
        requests=settings.rate_limit,
        tokens=settings.token_budget,
        trusted_proxies=parse_networks(settings.trusted_proxies),
        on_reject=lambda: metrics.rejected("rate_limited"),
    )
    keys = settings.api_keys
    app.add_middleware(
        AuthMiddleware, keys=KeyRing(parse_api_keys(keys.get_secret_value()) if keys else [])
    )
    app.add_middleware(DrainMiddleware, draining=lambda: _draining(app))
    if settings.cors_origin_list:  # off unless origins are listed
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID", "Server-Timing", "Retry-After",
                "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
            ],
        )  # fmt: skip
    # Request lines and HTTP metrics from one place, outside everything that may refuse.
    app.add_middleware(
        RequestLogMiddleware, routes=lambda: _route_paths(app), on_done=metrics.observe_http
    )
    app.add_middleware(RequestIdMiddleware)
    return app


def _route_paths(app: FastAPI) -> set[str]:
    return set(app.openapi()["paths"])


def _draining(app: FastAPI) -> bool:
    engine = getattr(app.state, "engine", None)
    return bool(engine is not None and engine.draining)


def begin_drain(app: FastAPI) -> None:
    """Readiness fails and new work is refused from now on (SIGTERM)."""
    engine = getattr(app.state, "engine", None)
    if engine is not None:
        engine.draining = True


def in_flight(app: FastAPI) -> int:
    """Requests being served now (health and metrics excluded)."""
    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, DrainMiddleware):
        layer = getattr(layer, "app", None)
    return layer.in_flight if isinstance(layer, DrainMiddleware) else 0


async def _start_quietly(engine: Engine, warmup_file: Path | None) -> None:
    # A failed start leaves the engine not-ready with the reason in /health.
    try:
        await engine.start()
    except Exception:  # noqa: BLE001
        return
    if warmup_file is not None:
        await _prefill(engine, warmup_file)


async def _prefill(engine: Engine, path: Path) -> None:
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
        new = await engine.prefill_cache(briefs)
    except CopygenError as exc:
        log.warning("cache warm-up stopped: %s", exc.type)
        return
    log.info("cache warm-up: %d briefs, %d generated, %d lines skipped", len(briefs), new, skipped)
