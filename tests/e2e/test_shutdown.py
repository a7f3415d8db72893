"""SIGTERM on a real server process with a request in flight (docs/reliability.md row 5)."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from tests.e2e.conftest import Server, start_server, stop_server, wait_ready

DRAIN_S = 60


def _slow_request(
    server: Server, *, variants: int, tokens: int, timeout_s: float, request_id: str = "slow"
) -> tuple[threading.Thread, dict[str, httpx.Response]]:
    """Send a long brief from a thread and return once its rows are decoding."""
    slow = {
        "product": "desk lamp",
        "channel": "product_description",
        "variants": variants,
        "max_new_tokens": tokens,
        "cache": "bypass",
        # What is under test is the drain, not the checks: one round's long rows, every time.
        "grounding": "off",
    }
    outcome: dict[str, httpx.Response] = {}
    headers = {"X-Request-ID": request_id}
    thread = threading.Thread(
        target=lambda: outcome.setdefault(
            "slow",
            httpx.post(f"{server.url}/v1/copy", json=slow, headers=headers, timeout=timeout_s),
        )
    )
    thread.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/health").json()["engine"].get("running_rows", 0) == 0:
        assert time.monotonic() < deadline, "the slow request never started"
        time.sleep(0.02)
    return thread, outcome


def test_sigterm_drains_in_flight_work_refuses_new_work_and_exits_zero() -> None:
    server = start_server({"COPYGEN_SHUTDOWN_DRAIN_S": str(DRAIN_S)})
    try:
        wait_ready(server)
        thread, outcome = _slow_request(server, variants=4, tokens=160, timeout_s=DRAIN_S)

        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        while httpx.get(f"{server.url}/health/ready").status_code == 200:
            assert time.monotonic() - signalled < 2, "readiness did not turn 503"
            time.sleep(0.02)
        refused = httpx.post(f"{server.url}/v1/copy", json={"product": "late"})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "draining"
        assert refused.headers["retry-after"] == "5"
        assert httpx.get(f"{server.url}/health/live").status_code == 200

        thread.join(DRAIN_S)
        assert outcome["slow"].status_code == 200
        assert len(outcome["slow"].json()["variants"]) >= 1
        assert server.process.wait(DRAIN_S) == 0
        assert time.monotonic() - signalled < DRAIN_S
        assert "drained in" in server.log()
    finally:
        if server.process.poll() is None:
            stop_server(server)


def test_work_still_running_at_the_drain_deadline_gets_503_and_the_log_says_503() -> None:
    import json

    server = start_server({"COPYGEN_SHUTDOWN_DRAIN_S": "1"})
    try:
        wait_ready(server)
        thread, outcome = _slow_request(
            server, variants=6, tokens=300, timeout_s=60, request_id="drain-deadline-1"
        )
        server.process.send_signal(signal.SIGTERM)
        thread.join(30)
        response = outcome["slow"]
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "draining"
        assert response.headers["retry-after"] == "5"
        assert server.process.wait(30) == 0
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        [logged] = [line for line in lines if line.get("request_id") == "drain-deadline-1"]
        assert logged["status"] == 503  # the status the client received
    finally:
        if server.process.poll() is None:
            stop_server(server)
