"""The dependencies routes reach the service through: the request's one deadline (the sooner of
the server's timeout and a sane X-Request-Timeout), the caller's tenant, and a clear 503 when
this server keeps no store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from copygen.api.deps import (
    TIMEOUT_HEADER,
    BookDep,
    DeadlineDep,
    GeneratorDep,
    JobsDep,
    TenantDep,
)
from copygen.api.responses import install_error_handlers
from copygen.cache.tiered import build_cache
from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.service.generators import Generators
from copygen.service.runtime import Runtime
from tests.fakes import FakeRunner


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(warmup=False, request_timeout_s=30)
    app = FastAPI()
    install_error_handlers(app)
    engine = Engine(settings, FakeRunner())
    # A runtime without a database: no brands, feedback or jobs.
    app.state.runtime = Runtime(settings, Generators(engine), build_cache(settings), None)

    async def deadline(deadline: DeadlineDep) -> float:
        return deadline.remaining()

    async def tenant(tenant: TenantDep) -> str:
        return tenant

    async def model(generator: GeneratorDep) -> str:
        return generator.model_id

    async def book(book: BookDep) -> None:
        raise AssertionError("unreachable")

    async def jobs(jobs: JobsDep) -> None:
        raise AssertionError("unreachable")

    for path, route in {"/deadline": deadline, "/tenant": tenant, "/model": model,
                        "/book": book, "/jobs": jobs}.items():  # fmt: skip
        app.add_api_route(path, route)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def _remaining(client: httpx.AsyncClient, timeout: str | None) -> float:
    headers = {TIMEOUT_HEADER.decode(): timeout} if timeout is not None else {}
    return float((await client.get("/deadline", headers=headers)).json())


async def test_a_callers_sooner_timeout_tightens_the_deadline(client: httpx.AsyncClient) -> None:
    assert 29 < await _remaining(client, None) <= 30
    assert 1 < await _remaining(client, "2.5") <= 2.5
    assert 29 < await _remaining(client, "600") <= 30  # never later than the server's own


@pytest.mark.parametrize("timeout", ["soon", "0", "-3", "inf", "nan", ""])
async def test_a_timeout_that_is_not_a_positive_number_is_ignored(
    client: httpx.AsyncClient, timeout: str
) -> None:
    assert 29 < await _remaining(client, timeout) <= 30


async def test_without_auth_the_caller_is_anonymous_and_the_default_generator_answers(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/tenant")).json() == "anonymous"
    assert (await client.get("/model")).json() == "fake/model"


@pytest.mark.parametrize("path", ["/book", "/jobs"])
async def test_a_server_without_a_store_answers_503(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "store_unavailable"
