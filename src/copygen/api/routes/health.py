"""Liveness (the process answers), readiness (model loaded and warm), deep status."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import psutil
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from copygen import __version__
from copygen.api.deps import RuntimeDep
from copygen.api.responses import error_response
from copygen.cache.tiered import TieredCache
from copygen.generation import GeneratorSnapshot

router = APIRouter(tags=["health"])
_PROCESS = psutil.Process()


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", response_model=None)
async def ready(runtime: RuntimeDep) -> dict[str, str] | JSONResponse:
    """Ready = model warm, not draining, model breaker not open. A Redis outage does not make
    the pod unready: the cache degrades to L1 and generation goes on."""
    engine = runtime.default.snapshot()
    if engine.accepting:
        return {"status": "ready"}
    reason = (
        "the service is draining"
        if runtime.draining
        else "the model breaker is open"
        if engine.ready
        else "the model is loading or warming up"
    )
    return error_response(503, "not_ready", reason, headers={"Retry-After": "5"})


@router.get("/health")
async def health(runtime: RuntimeDep, request: Request) -> dict[str, Any]:
    engine = runtime.default.snapshot()
    limiter = getattr(request.app.state, "limiter", None)
    sections = {**engine.sections, "engine": asdict(engine.figures)}
    for routed in runtime.generators.all[1:]:  # e.g. the backend some channels go to
        sections |= {k: v for k, v in routed.snapshot().sections.items() if k not in sections}
    return {
        "status": _status(engine, draining=runtime.draining),
        "version": __version__,
        **sections,
        "degraded_to_cpu": engine.degraded_to_cpu,
        "routes": {channel: "backend" for channel in sorted(runtime.generators.routes)},
        "redis": _redis_status(runtime.cache),
        "rate_limit": limiter.status() if limiter is not None else None,
        "store": runtime.book.status() if runtime.book is not None else None,
        "memory": {
            **engine.memory.status(),
            "rss_bytes": _PROCESS.memory_info().rss,
            "device": dict(engine.device),
        },
        "breakers": {b.name: b.state.value for b in runtime.breakers()},
    }


def _status(engine: GeneratorSnapshot, *, draining: bool) -> str:
    if draining:
        return "draining"
    if not engine.ready:
        return "starting"
    return "ready" if engine.accepting else "degraded"


def _redis_status(cache: TieredCache) -> dict[str, Any]:
    l2 = cache.l2
    if l2 is None:
        return {"configured": False, "up": None, "breaker": None}
    return {"configured": True, "up": l2.up, "breaker": l2.breaker.state.value}
