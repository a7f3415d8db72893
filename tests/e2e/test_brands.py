"""Brands in a real `copygen serve` process: a write answered 201 survives a kill -9 right
after it, on a SQLite file and on a PostgreSQL server; a brief naming the brand is written by
the real model within the brand's rules."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.services import PostgresServer, Server, start_server, stop_server, wait_ready
from tests.tiny_model import build_tiny_model

BRAND = {
    "name": "Acme Solar",
    "voice": "Warm and plain",
    "preferred_terms": ["sun"],
    "forbidden_terms": ["cheap"],
    "facts": ["Founded in 1999"],
    "examples": [{"channel": "sms", "text": "Sunny days ahead with Acme"}],
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-brands"), chat=True)


def _database_env(kind: str, tmp_path: Path, postgres: PostgresServer | None) -> dict[str, str]:
    if kind == "sqlite":
        return {"COPYGEN_DATA_DIR": str(tmp_path / "data")}
    assert postgres is not None
    return {"COPYGEN_DATABASE_URL": postgres.new_database()}


def _kill9(server: Server) -> None:
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_brand_write_survives_kill_9_right_after_its_answer(
    kind: str, tmp_path: Path, tiny: Path, request: pytest.FixtureRequest
) -> None:
    postgres = request.getfixturevalue("postgres") if kind == "postgresql" else None
    env = {
        "COPYGEN_MODEL": str(tiny),
        "COPYGEN_LOG_LEVEL": "warning",
        **_database_env(kind, tmp_path, postgres),
    }
    server = start_server(env)
    try:
        wait_ready(server)
        created = httpx.post(f"{server.url}/v1/brands", json=BRAND, timeout=30)
        assert created.status_code == 201
        _kill9(server)  # no shutdown: whatever was not durable at the 201 is gone

        server = start_server(env, port=int(server.url.rsplit(":", 1)[1]))
        wait_ready(server)
        url = f"{server.url}/v1/brands/{created.json()['id']}"
        assert httpx.get(url, timeout=30).json() == created.json()
        edited = httpx.patch(url, json={"voice": "Bold"}, headers={"If-Match": '"1"'}, timeout=30)
        assert edited.status_code == 200
        _kill9(server)

        server = start_server(env, port=int(server.url.rsplit(":", 1)[1]))
        wait_ready(server)
        after = httpx.get(url, timeout=30)
        assert (after.headers["etag"], after.json()["voice"]) == ('"2"', "Bold")
        copy = httpx.post(
            f"{server.url}/v1/copy",
            json={"product": "Solar lamp", "channel": "sms", "brand": created.json()["id"],
                  "variants": 2, "max_new_tokens": 12, "grounding": "off"},
            timeout=120,
        )  # fmt: skip
        assert copy.status_code == 200
        assert not any("cheap" in v["text"].lower() for v in copy.json()["variants"])
    finally:
        if server.process.poll() is None:
            stop_server(server)
