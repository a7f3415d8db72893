"""Liveness (the process answers), readiness (model loaded and warm), deep status."""

from __future__ import annotations

from typing import Any

import psutil
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from copygen import __version__
from copygen.api.deps import CopywriterDep, EngineDep
from copygen.api.responses import error_response
from copygen.cache.tiered import TieredCache
from copygen.engine.engine import Engine

router = APIRouter(tags=["health"])
_PROCESS = psutil.Process()


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", response_model=None)
async def ready(engine: EngineDep) -> dict[str, str] | JSONResponse:
    """Ready = model warm, not draining, model breaker not open. A Redis outage does not make
    the pod unready: the cache degrades to L1 and generation goes on."""
    if engine.accepting:
        return {"status": "ready"}
    reason = (
        "the service is draining"
        if engine.draining
        else "the model breaker is open"
        if engine.ready
        else "the model is loading or warming up"
    )
    return error_response(503, "not_ready", reason, headers={"Retry-After": "5"})


@router.get("/health")
async def health(copywriter: CopywriterDep, request: Request) -> dict[str, Any]:
    engine = copywriter.engine
    limiter = getattr(request.app.state, "limiter", None)
    info = engine.info
    return {
        "status": _status(engine),
        "version": __version__,
        "model": {
            "id": engine.model_id,
            "device": info.device if info else None,
            "dtype": info.dtype if info else None,
            "load_seconds": info.load_seconds if info else None,
            "chat_template": info.chat_template if info else None,
            "forward": info.forward if info else None,
            "error": engine.startup_error,
        },
        "engine": engine.stats(),
        "redis": _redis_status(copywriter.cache),
        "rate_limit": limiter.status() if limiter is not None else None,
        "memory": {
            **engine.memory.status(),
            "rss_bytes": _PROCESS.memory_info().rss,
            "device": engine.device_stats(),
        },
        "breakers": {b.name: b.state.value for b in copywriter.breakers()},
        "degraded_to_cpu": engine.degraded_to_cpu,
        "batching": {
            "mode": engine.settings.batching,
            "max_batch_size": engine.settings.max_batch_size,
            "ceiling": engine.policy.ceiling,
            "max_batch_wait_ms": engine.settings.max_batch_wait_ms,
            "idle_wait_window_ms": round(engine.policy.window_s() * 1000, 2),
        },
    }


def _status(engine: Engine) -> str:
    if engine.draining:
        return "draining"
    if not engine.ready:
        return "starting"
    return "ready" if engine.accepting else "degraded"


def _redis_status(cache: TieredCache) -> dict[str, Any]:
    l2 = cache.l2
    if l2 is None:
        return {"configured": False, "up": None, "breaker": None}
    return {"configured": True, "up": l2.up, "breaker": l2.breaker.state.value}
