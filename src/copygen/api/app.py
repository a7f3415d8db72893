"""The application factory: routes, error handlers and the middleware stack, in order."""

from __future__ import annotations

from typing import cast

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from copygen import __version__
from copygen.api.lifespan import lifespan
from copygen.api.middleware.auth import AuthMiddleware
from copygen.api.middleware.body_limit import BodyLimitMiddleware
from copygen.api.middleware.client_ip import parse_networks
from copygen.api.middleware.drain import DrainMiddleware, InFlight
from copygen.api.middleware.fastpath import CopyHitFastPath
from copygen.api.middleware.hosts import AllowedHostsMiddleware
from copygen.api.middleware.rate_limit import RateLimitMiddleware
from copygen.api.middleware.request_id import RequestIdMiddleware
from copygen.api.middleware.request_log import RequestLogMiddleware
from copygen.api.middleware.tracing import TracingMiddleware
from copygen.api.openai import routes as openai
from copygen.api.responses import COMMON_ERRORS, install_error_handlers
from copygen.api.routes import (
    admin,
    assets,
    brands,
    catalog,
    copy,
    feedback,
    health,
    jobs,
    ui,
)
from copygen.api.routes import metrics as metrics_route
from copygen.auth import KeyRing, parse_api_keys
from copygen.budget import TokenBudget
from copygen.config import Settings
from copygen.generation import Generator
from copygen.observability import tracing
from copygen.observability.metrics import Metrics
from copygen.ratelimit import Limiter
from copygen.resilience.admission import Drain
from copygen.service.runtime import Runtime
from copygen.service.workflow import CopyWorkflow


def create_app(settings: Settings | None = None, engine: Generator | None = None) -> FastAPI:
    """Build the app; the lifespan builds its runtime. ``engine`` lets tests inject a
    generator built on a fake runner."""
    settings = settings or Settings()
    metrics = Metrics()
    drain, flights = Drain(), InFlight()

    limiter = Limiter(settings.redis_url, timeout_s=settings.redis_timeout_s)
    budget = TokenBudget(limiter, settings.token_budget) if settings.token_budget else None

    def build() -> Runtime:
        runtime = Runtime.from_settings(settings, engine, metrics=metrics, drain=drain)
        if runtime.jobs is not None:
            runtime.jobs.budget = budget  # a job's items charge its tenant's budget
        return runtime

    docs = settings.docs_enabled
    app = FastAPI(
        title="copygen",
        version=__version__,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        summary="Marketing copy from a language model, checked against each channel's rules.",
        lifespan=lifespan(settings, build),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.drain = drain
    app.state.flights = flights
    metrics.info.labels(__version__, settings.model).set(1)
    metrics.watch(lambda: getattr(app.state, "runtime", None))
    app.state.limiter = limiter
    install_error_handlers(app)
    routers = (copy, assets, jobs, brands, feedback, openai, catalog, admin, health, metrics_route)
    for module in routers:
        app.include_router(module.router, responses=COMMON_ERRORS)
    if settings.ui:
        app.include_router(ui.router)
    # Innermost first: the fast path runs after every other middleware.
    app.add_middleware(CopyHitFastPath, copywriter=lambda: _workflow(app))
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=limiter,
        requests=settings.rate_limit,
        budget=budget,
        trusted_proxies=parse_networks(settings.trusted_proxies),
        on_reject=lambda: metrics.rejected("rate_limited"),
    )
    keys = settings.api_keys
    app.add_middleware(
        AuthMiddleware,
        keys=KeyRing(parse_api_keys(keys.get_secret_value()) if keys else []),
        cors_origins=settings.cors_origin_list,
    )
    app.add_middleware(DrainMiddleware, drain=drain, flights=flights)
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
    # Before CORS answers a preflight: a page that rebound its name to this address is no
    # origin of ours.
    app.add_middleware(AllowedHostsMiddleware, rules=settings.allowed_host_rules)
    # Request lines and HTTP metrics from one place, outside everything that may refuse.
    app.add_middleware(
        RequestLogMiddleware, routes=lambda: _route_paths(app), on_done=metrics.observe_http
    )
    if tracing.enabled():  # absent, not idle, when off: see observability/tracing.py
        app.add_middleware(TracingMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app


def _route_paths(app: FastAPI) -> set[str]:
    return set(app.openapi()["paths"])


def _workflow(app: FastAPI) -> CopyWorkflow | None:
    runtime = getattr(app.state, "runtime", None)
    return runtime.workflow if isinstance(runtime, Runtime) else None


def begin_drain(app: FastAPI) -> None:
    """Readiness fails and new work is refused from now on (SIGTERM), by every generator."""
    cast(Drain, app.state.drain).begin()


def in_flight(app: FastAPI) -> int:
    """Requests being served now (health and metrics excluded)."""
    return len(cast(InFlight, app.state.flights))


async def abort_in_flight(app: FastAPI) -> None:
    """Answer every request still running with 503 ``draining`` (or end its stream with an
    error event) and stop its work: the drain deadline passed."""
    await cast(InFlight, app.state.flights).abort()
