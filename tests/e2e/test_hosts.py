"""A real `copygen serve` with its defaults (no keys, 127.0.0.1, COPYGEN_ALLOWED_HOSTS unset)
over a real socket: a page that rebinds its name to 127.0.0.1 gets nothing (security review
#5); callers naming the loopback address or localhost are served."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.services import Server, start_server, stop_server

REBOUND = {"Host": "rebind.attacker.example"}


@pytest.fixture(scope="module")
def defaults() -> Iterator[Server]:
    """Up once it answers: these routes need no model."""
    running = start_server(env={"COPYGEN_ALLOWED_HOSTS": ""})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert running.process.poll() is None, running.log()[-2000:]
            assert time.monotonic() < deadline, "the server never answered"
            try:
                httpx.get(f"{running.url}/health/live", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield running
    finally:
        stop_server(running)


def test_a_foreign_host_is_refused_and_the_loopback_names_are_served(defaults: Server) -> None:
    port = defaults.url.rsplit(":", 1)[1]
    for method, path in [("DELETE", "/v1/cache"), ("GET", "/v1/jobs/webhook-secret"),
                         ("GET", "/v1/feedback"), ("GET", "/v1/channels")]:  # fmt: skip
        refused = httpx.request(method, defaults.url + path, headers=REBOUND, timeout=10)
        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["error"]["type"] == "invalid_host"
        assert "attacker" not in refused.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        ok = httpx.get(f"{defaults.url}/v1/channels", headers={"Host": host}, timeout=10)
        assert ok.status_code == 200, host
    assert httpx.delete(f"{defaults.url}/v1/cache", timeout=10).status_code == 200
    assert httpx.get(f"{defaults.url}/health/live", headers=REBOUND).status_code == 200
