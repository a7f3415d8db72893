"""Health through the app (fake runner): liveness, readiness and the deep status agree on the
state the service is in (starting, ready, draining), and /health reports every part."""

from __future__ import annotations

import threading

from copygen.api.app import begin_drain
from copygen.api.routes.health import router
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner


def test_the_router_serves_the_three_probes() -> None:
    paths = {route.path for route in router.routes}  # type: ignore[attr-defined]
    assert paths == {"/health/live", "/health/ready", "/health"}


async def test_the_deep_status_reports_every_part() -> None:
    async with serving(app(FakeRunner())) as client:
        health = (await client.get("/health")).json()
    assert (health["status"], health["model"]["device"]) == ("ready", "cpu")
    assert health["redis"] == {"configured": False, "up": None, "breaker": None}
    assert health["rate_limit"]["redis_configured"] is False
    assert health["store"]["database"] == "sqlite"
    assert health["routes"] == {}
    assert health["breakers"] == {"model": "closed"}
    assert health["memory"]["rss_bytes"] > 0
    assert health["degraded_to_cpu"] is False
    assert set(health["engine"]) >= {"queued_jobs", "running_rows"}


async def test_while_the_model_loads_it_is_live_starting_and_not_ready() -> None:
    gate = threading.Event()
    async with serving(app(FakeRunner(gate=gate)), ready=False) as client:
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        status = (await client.get("/health")).json()["status"]
        gate.set()
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 503
    assert ready.json()["error"]["message"] == "the model is loading or warming up"
    assert status == "starting"


async def test_a_draining_service_is_live_but_not_ready_and_says_why() -> None:
    built = app(FakeRunner())
    async with serving(built) as client:
        begin_drain(built)
        live = await client.get("/health/live")
        ready = await client.get("/health/ready")
        status = (await client.get("/health")).json()["status"]
    assert live.status_code == 200
    assert (ready.status_code, ready.headers["retry-after"]) == (503, "5")
    assert ready.json()["error"] == {
        "type": "not_ready", "message": "the service is draining", "field": None,
    }  # fmt: skip
    assert status == "draining"
