"""DNS rebinding and cross-site pages (security review #5): the Host names served
(COPYGEN_ALLOWED_HOSTS, by default the loopback names on a loopback bind) and admin routes
refusing another site's pages, keys or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from copygen.api.middleware.hosts import UNCHECKED_PATHS
from copygen.config import Settings
from copygen.hostnames import same_origin, split_host
from tests.client import wait_ready

#: What a page on attacker.example sends once its name resolves to 127.0.0.1.
REBOUND = {"Host": "rebind.attacker.example:8000"}
KEY = "alpha-0123456789abcdef"


@asynccontextmanager
async def _client(tmp_path: Path, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    from copygen.api.app import create_app
    from copygen.engine.engine import Engine
    from tests.fakes import FakeRunner

    config = Settings(warmup=False, data_dir=tmp_path, **settings)  # type: ignore[arg-type]
    app = create_app(config, engine=Engine(config, FakeRunner()))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://127.0.0.1:8000",
            headers={"Authorization": f"Bearer {KEY}"} if "api_keys" in settings else None,
        ) as client,
    ):
        await wait_ready(client)
        yield client


async def test_without_keys_a_foreign_host_is_refused_and_the_loopback_names_are_served(
    tmp_path: Path,
) -> None:
    """The defaults (no keys, a loopback bind): every caller is admin, so a page that rebinds
    its name to 127.0.0.1 must get nothing: not the cache, the webhook secret, the feedback
    export, nor a generation."""
    async with _client(tmp_path, allowed_hosts="", webhook_secret="s3cret-master-key") as c:
        for method, path in [
            ("DELETE", "/v1/cache"),
            ("GET", "/v1/jobs/webhook-secret"),
            ("GET", "/v1/feedback"),
            ("POST", "/v1/copy"),
            ("GET", "/"),
            ("GET", "/health"),
        ]:
            body = {"product": "lamp", "variants": 1} if method == "POST" else None
            response = await c.request(method, path, json=body, headers=REBOUND)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"]["type"] == "invalid_host"
            assert "attacker" not in response.text
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost", "LocalHost."):
            response = await c.get("/v1/jobs/webhook-secret", headers={"Host": host})
            assert response.status_code == 200, host
        assert (await c.delete("/v1/cache")).status_code == 200
        # Probes and scrapes name the pod's address.
        for path in sorted(UNCHECKED_PATHS):
            assert (await c.get(path, headers=REBOUND)).status_code == 200


async def test_the_names_served_are_configurable_and_a_public_bind_serves_any(
    tmp_path: Path,
) -> None:
    allowed = "copy.example.com, *.corp.example, admin.example:8443"
    async with _client(tmp_path, allowed_hosts=allowed) as c:
        cases = {
            "copy.example.com": 200, "copy.example.com:443": 200, "a.corp.example": 200,
            "admin.example:8443": 200, "corp.example": 400, "admin.example": 400,
            "127.0.0.1:8000": 400, "copy.example.com.attacker.example": 400, "": 400,
        }  # fmt: skip
        found = {
            host: (await c.get("/v1/channels", headers={"Host": host})).status_code
            for host in cases
        }
        assert found == cases
    async with _client(tmp_path, host="0.0.0.0", api_keys=KEY, allowed_hosts="") as c:
        assert (await c.get("/v1/channels", headers=REBOUND)).status_code == 200


async def test_admin_routes_refuse_another_sites_page_even_without_keys(tmp_path: Path) -> None:
    async with _client(tmp_path, allowed_hosts="", cors_origins="https://console.example") as c:
        for origin, status in [
            ("http://evil.example", 403),
            ("null", 403),
            ("http://127.0.0.1:9999", 403),
            ("http://127.0.0.1:8000", 200),
            ("https://console.example", 200),
        ]:
            response = await c.delete("/v1/cache", headers={"Origin": origin})
            assert response.status_code == status, origin
            if status == 403:
                assert response.json()["error"]["type"] == "forbidden"
                assert "evil" not in response.text


def test_host_names_and_origins_are_read_like_browsers_send_them() -> None:
    assert split_host("[::1]:8000") == ("::1", 8000)
    assert split_host("Example.COM.:80") == ("example.com", 80)
    assert split_host("::1") == ("::1", None)
    for bad in ("[::1", "[::1]x", "a:b", "a:123456", ":80", ""):
        assert split_host(bad) is None, bad
    assert same_origin("http://localhost", "localhost:80")
    assert same_origin("https://copy.example.com", "copy.example.com")
    assert not same_origin("https://copy.example.com", "copy.example.com:80")
    assert not same_origin("file://x", "x")
    with pytest.raises(ValueError, match="ALLOWED_HOSTS|expected names"):
        Settings(allowed_hosts="localhost, [::1")
