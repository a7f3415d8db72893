"""Keys, scopes, tenants, body caps, client addresses, CORS and the start-up guard
(docs/security.md; RELIABILITY rows 10, 11, 13, 14, 15, 19)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from copygen.api.app import create_app
from copygen.api.middleware.auth import AuthMiddleware, is_open
from copygen.api.middleware.client_ip import client_ip, parse_networks
from copygen.api.state import KEY_SCOPE, TENANT
from copygen.auth import ANONYMOUS, KeyRing, parse_api_keys
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.fakes import FakeRunner

PLAIN = "alpha-0123456789abcdef"
ADMIN = "omega-fedcba9876543210"
CANARY_KEY = "canary-key-5e1d9a2b7c"
CANARY_PROMPT = "CANARYPROMPT-77aa"
KEYS = f"alpha:{PLAIN},ops:{ADMIN}:admin"


@asynccontextmanager
async def _client(runner: FakeRunner | None = None, **settings: object) -> AsyncIterator[
    tuple[httpx.AsyncClient, FakeRunner]
]:  # fmt: skip
    runner = runner or FakeRunner()
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    app: FastAPI = create_app(config, engine=Engine(config, runner))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        while (await c.get("/health/ready")).status_code != 200:
            await asyncio.sleep(0.01)
        yield c, runner


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


BODY = {"product": "lamp", "variants": 1}


async def test_the_auth_matrix() -> None:
    async with _client(api_keys=KEYS) as (c, _):
        cases: list[tuple[dict[str, str], int]] = [
            ({}, 401),
            ({"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, 401),
            ({"Authorization": "Bearer"}, 401),
            ({"Authorization": "Bearer "}, 401),
            (_bearer(PLAIN[:-1]), 401),  # a prefix of a valid key
            (_bearer(PLAIN + "x"), 401),
            (_bearer(CANARY_KEY), 401),
            ({"Authorization": "Bearer " + "k" * 10_000}, 431),
            (_bearer(PLAIN), 200),
            ({"authorization": f"bearer {PLAIN}"}, 200),
            ({"X-API-Key": PLAIN}, 200),
            (_bearer(ADMIN), 200),
        ]
        for headers, status in cases:
            response = await c.post("/v1/copy", json=BODY, headers=headers)
            assert response.status_code == status, (headers.keys(), response.text)
            if status == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.json()["error"]["type"] == "unauthorized"
                assert CANARY_KEY not in response.text
        # Admin routes need an admin key; probes and metrics need none.
        assert (await c.delete("/v1/cache", headers=_bearer(PLAIN))).status_code == 403
        assert (await c.delete("/v1/cache", headers=_bearer(ADMIN))).status_code == 200
        assert (await c.get("/v1/cache/stats", headers=_bearer(PLAIN))).status_code == 200
        assert (await c.get("/v1/cache/stats")).status_code == 401
        for path in ("/health/live", "/health/ready", "/health", "/metrics"):
            assert (await c.get(path)).status_code == 200
        assert (await c.get("/v1/models")).status_code == 401


async def test_tenants_get_separate_cache_entries_and_no_key_material_back() -> None:
    async with _client(api_keys=KEYS) as (c, runner):
        first = (await c.post("/v1/copy", json=BODY, headers=_bearer(PLAIN))).json()
        other = (await c.post("/v1/copy", json=BODY, headers=_bearer(ADMIN))).json()
        again = (await c.post("/v1/copy", json=BODY, headers=_bearer(PLAIN))).json()
        assert (first["cached"], other["cached"], again["cached"]) == (False, False, True)
        assert len(runner.calls) == 2
        for body in (first, other, again):
            text = str(body)
            assert PLAIN not in text
            assert "alpha" not in text
            assert "copygen:copy" not in text  # no cache key either


def test_api_keys_parse_from_a_list_or_a_file_and_errors_never_show_keys(tmp_path: Path) -> None:
    keys = parse_api_keys(f"{PLAIN}, team:{ADMIN}:admin")
    described = [(k.tenant.startswith("key-"), k.scope) for k in keys]
    assert described == [(True, "plain"), (False, "admin")]
    file = tmp_path / "keys"
    file.write_text(f"# comment\nweb:{PLAIN}\n\nops:{ADMIN}:admin  # trailing\n")
    ring = KeyRing(parse_api_keys(f"@{file}"))
    found = ring.find(ADMIN)
    assert found is not None
    assert (found.tenant, found.scope) == ("ops", "admin")
    assert ring.find(ADMIN[:-1]) is None
    for bad in ("short", f"a:b:c:{PLAIN}", f":{PLAIN}"):
        with pytest.raises(ValueError, match="COPYGEN_API_KEYS") as error:
            parse_api_keys(bad)
        assert bad not in str(error.value)
    with pytest.raises(ValueError, match="COPYGEN_API_KEYS") as error:
        Settings(api_keys="tiny")  # type: ignore[arg-type]
    assert "tiny" not in str(error.value)


def test_a_public_bind_without_keys_is_refused_unless_explicitly_insecure() -> None:
    with pytest.raises(ValueError, match="ALLOW_INSECURE_NO_AUTH"):
        Settings(host="0.0.0.0")
    Settings(host="0.0.0.0", api_keys=PLAIN)  # type: ignore[arg-type]
    Settings(host="0.0.0.0", allow_insecure_no_auth=True)
    Settings(host="127.0.0.1")


async def test_bodies_over_the_cap_get_413_with_or_without_content_length() -> None:
    async with _client(max_body_bytes=4096) as (c, runner):
        big = b'{"product": "' + b"x" * 10_000_000 + b'"}'
        declared = await c.post(
            "/v1/copy", content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert declared.json()["error"]["type"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

        streamed = await c.post(
            "/v1/copy", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert "xxxx" not in streamed.text
        lying = await c.post(
            "/v1/copy",
            content=b'{"product": "lamp"}',
            headers={"content-type": "application/json", "content-length": "99999999"},
        )
        assert lying.status_code == 413
        assert not runner.calls


async def test_malformed_json_and_unicode_edge_cases_never_500() -> None:
    bodies: list[bytes] = [
        b'{"product": "lamp"',
        b'{"product": NaN}',
        b'{"product": 12}',
        b"[" * 5000 + b"]" * 5000,
        b'{"product": "\\ud800"}',  # a lone surrogate
        '{"product": "a\u0000b\u202eevil\u200dzwj e\u0301"}'.encode(),
        b'{"product": "' + b"y" * 100_000 + b'"}',
        b"\xff\xfe not utf-8",
    ]
    async with _client(max_body_bytes=1_000_000) as (c, _):
        for body in bodies:
            response = await c.post(
                "/v1/copy", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code in (200, 400, 413, 422), (body[:40], response.text)
            if response.status_code != 200:
                assert len(response.content) < 400
                assert "yyyy" not in response.text
                assert "evil" not in response.text


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    def scope(peer: str, forwarded: str) -> dict[str, object]:
        return {"client": (peer, 1), "headers": [(b"x-forwarded-for", forwarded.encode())]}

    none = parse_networks("")
    proxies = parse_networks("10.0.0.0/8")
    assert client_ip(scope("203.0.113.9", "1.2.3.4"), none) == "203.0.113.9"  # type: ignore[arg-type]
    assert client_ip(scope("203.0.113.9", "1.2.3.4"), proxies) == "203.0.113.9"  # type: ignore[arg-type]
    assert client_ip(scope("10.1.1.1", "1.2.3.4, 10.2.2.2"), proxies) == "1.2.3.4"  # type: ignore[arg-type]
    assert client_ip(scope("10.1.1.1", "6.6.6.6, 1.2.3.4"), proxies) == "1.2.3.4"  # type: ignore[arg-type]


async def test_rotating_forwarded_for_from_an_untrusted_peer_does_not_escape_the_limit() -> None:
    async with _client(rate_limit="3/minute") as (c, _):
        statuses = []
        for i in range(6):
            headers = {"X-Forwarded-For": f"198.51.100.{i}"}
            body = {**BODY, "product": f"p{i}"}
            statuses.append((await c.post("/v1/copy", json=body, headers=headers)).status_code)
        assert statuses == [200, 200, 200, 429, 429, 429]


async def test_cors_is_off_by_default_and_on_for_listed_origins() -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with _client() as (c, _):
        response = await c.options("/v1/copy", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    async with _client(cors_origins="https://app.example") as (c, _):
        response = await c.options("/v1/copy", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://app.example"


async def test_docs_can_be_turned_off_and_no_server_banner_leaks() -> None:
    async with _client(docs_enabled=False) as (c, _):
        assert (await c.get("/docs")).status_code in (401, 404)
        assert (await c.get("/openapi.json")).status_code == 404
        assert "server" not in (await c.get("/health/live")).headers


async def test_the_canary_key_and_prompt_never_reach_logs_errors_or_metrics() -> None:
    with structlog.testing.capture_logs() as logs:
        async with _client(api_keys=KEYS) as (c, _):
            await c.post("/v1/copy", json={"product": CANARY_PROMPT}, headers=_bearer(CANARY_KEY))
            ok = await c.post(
                "/v1/copy",
                json={"product": CANARY_PROMPT, "keywords": [CANARY_PROMPT]},
                headers=_bearer(PLAIN),
            )
            bad = await c.post(
                "/v1/copy",
                json={"product": CANARY_PROMPT, "tone": "x" * 61},
                headers=_bearer(PLAIN),
            )
            metrics = (await c.get("/metrics")).text
    assert ok.status_code == 200
    assert bad.status_code == 422
    for text in (str(logs), bad.text, metrics):
        assert CANARY_KEY not in text
        assert CANARY_PROMPT not in text
        assert PLAIN not in text


async def _resolved(keys: str, path: str, headers: list[tuple[bytes, bytes]]) -> object:
    """(tenant, scope) the auth middleware leaves in scope state, or the refusal's status."""
    seen: list[tuple[str, str]] = []

    async def inner(scope: dict[str, Any], receive: object, send: object) -> None:
        seen.append((scope["state"][TENANT], scope["state"][KEY_SCOPE]))

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = AuthMiddleware(inner, KeyRing(parse_api_keys(keys) if keys else []))
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await middleware(scope, None, send)  # type: ignore[arg-type]
    return seen[0] if seen else sent[0]["status"]


async def test_the_caller_is_resolved_into_a_tenant_and_a_scope() -> None:
    bearer = [(b"authorization", f"Bearer {PLAIN}".encode())]
    assert await _resolved(KEYS, "/v1/models", bearer) == ("alpha", "plain")
    assert await _resolved(KEYS, "/v1/models", [(b"x-api-key", ADMIN.encode())]) == (
        "ops", "admin",
    )  # fmt: skip
    # Open paths are anyone's, with no more than a plain key's rights.
    assert await _resolved(KEYS, "/health/ready", []) == (ANONYMOUS, "plain")
    assert await _resolved(KEYS, "/", []) == (ANONYMOUS, "plain")
    # Without configured keys (local use) the caller may do everything.
    assert await _resolved("", "/v1/cache", []) == (ANONYMOUS, "admin")
    # An oversized X-API-Key is ignored, not read: no key was presented.
    assert await _resolved(KEYS, "/v1/models", [(b"x-api-key", b"k" * 5000)]) == 401


@pytest.mark.parametrize(
    ("path", "open_"),
    [("/", True), ("/health/live", True), ("/metrics", True), ("/ui/app.js", True),
     ("/openapi.json", True), ("/v1/copy", False), ("/v1/brands", False), ("/ui", False)],
)  # fmt: skip
def test_only_probes_metrics_docs_and_the_playground_are_open(path: str, open_: bool) -> None:
    assert is_open(path) is open_
