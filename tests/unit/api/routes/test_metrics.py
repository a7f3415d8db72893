"""GET /metrics through the app: Prometheus' text format, this app's own registry (apps in one
process never share figures), and scrapes that do not count themselves."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from copygen.api.routes.metrics import router
from copygen.observability.metrics import Metrics
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner


def _requests_by_handler(text: str) -> dict[str, float]:
    counted: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "copygen_http_requests_total":
                handler = sample.labels["handler"]
                counted[handler] = counted.get(handler, 0) + sample.value
    return counted


async def test_the_exposition_is_prometheus_text_and_scrapes_do_not_count_themselves() -> None:
    async with serving(app(FakeRunner()), ready=False) as client:
        await client.get("/metrics")
        await client.get("/v1/channels")
        response = await client.get("/metrics")
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    counted = _requests_by_handler(response.text)
    assert counted["/v1/channels"] == 1
    assert "/metrics" not in counted


async def test_each_app_exposes_only_its_own_figures() -> None:
    first, second = app(FakeRunner()), app(FakeRunner())
    async with serving(first, ready=False) as a, serving(second, ready=False) as b:
        for _ in range(3):
            await a.get("/v1/tones")
        mine, theirs = (await a.get("/metrics")).text, (await b.get("/metrics")).text
    assert _requests_by_handler(mine)["/v1/tones"] == 3
    assert "/v1/tones" not in _requests_by_handler(theirs)


async def test_the_route_exposes_the_registry_the_app_holds() -> None:
    bare = FastAPI()
    bare.state.metrics = Metrics()
    bare.state.metrics.rejected("queue_full")
    bare.include_router(router)
    transport = httpx.ASGITransport(app=bare)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        text = (await client.get("/metrics")).text
    assert 'copygen_rejections_total{reason="queue_full"} 1.0' in text
