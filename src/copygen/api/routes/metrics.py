"""GET /metrics: the Prometheus exposition of this process."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from copygen.observability import tracing
from copygen.observability.metrics import OPENMETRICS, OPENMETRICS_TYPE, Metrics

router = APIRouter(tags=["observability"])


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """OpenMetrics with exemplars (trace ids on latency buckets) when asked for it and tracing
    is on; the classic text format otherwise."""
    registry: Metrics = request.app.state.metrics
    if tracing.enabled() and OPENMETRICS in request.headers.get("accept", ""):
        return Response(registry.exposition_with_exemplars(), media_type=OPENMETRICS_TYPE)
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
