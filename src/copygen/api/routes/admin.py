"""Administration: cache figures and invalidation (everything, or one channel and/or model),
and on-demand profiles of the process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel

from copygen.api.deps import RuntimeDep
from copygen.api.schemas import ErrorBody
from copygen.cache.keys import key_pattern, model_tag
from copygen.copywriting.channels import CHANNELS
from copygen.errors import InvalidRequest
from copygen.observability.profiling import MAX_SECONDS

router = APIRouter(tags=["cache"])


class CacheDeleted(BaseModel):
    deleted: dict[str, int]


@router.get("/v1/cache/stats")
async def cache_stats(runtime: RuntimeDep) -> dict[str, Any]:
    """Hits per tier, misses, hit rate, sizes, and whether Redis is up."""
    return await runtime.cache.stats()


@router.delete("/v1/cache", response_model=CacheDeleted, responses={422: {"model": ErrorBody}})
async def cache_delete(
    runtime: RuntimeDep,
    channel: str | None = Query(None, max_length=64, description="only this channel"),
    model: str | None = Query(None, max_length=200, description="only this model id"),
) -> CacheDeleted:
    """Delete cached copy from Redis and from every replica's L1 (a message on Redis; a
    replica that missed it clears its L1 at its next epoch check). 503 when Redis is down."""
    if channel is not None and channel.lower() not in CHANNELS:
        raise InvalidRequest("unknown channel; GET /v1/channels lists them", field="channel")
    channel = channel.lower() if channel else None
    tag = model_tag(model) if model else None

    def match(key: str) -> bool:
        parts = key.split(":")
        return (tag is None or parts[3] == tag) and (channel is None or parts[4] == channel)

    deleted = await runtime.cache.delete(key_pattern(model=model, channel=channel), match)
    return CacheDeleted(deleted=deleted)


@router.post(
    "/v1/admin/profile",
    tags=["admin"],
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "a speedscope profile"},
        422: {"model": ErrorBody},
    },
)
async def profile(
    runtime: RuntimeDep,
    seconds: float = Query(5, gt=0, le=MAX_SECONDS, description="how long to sample"),
) -> Response:
    """Sample every thread's stack (the event loop, the model thread…) every 5 ms for
    ``seconds``, answered as speedscope JSON: open it at https://www.speedscope.app
    (docs/observability.md). Admin key only; one profile at a time (429 while one runs)."""
    samples = await runtime.profiler.record(seconds)
    body = await asyncio.to_thread(json.dumps, samples, separators=(",", ":"))
    filename = "copygen-profile.speedscope.json"
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
