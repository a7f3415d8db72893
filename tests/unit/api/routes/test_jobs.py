"""The job routes through the app (fake runner, SQLite): a queued job's shape, ids that cannot
exist, a webhook secret only where the server has one, and an asset job's bad request named
inside ``request``."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from copygen.api.routes.jobs import MAX_ITEMS, JobOut
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner

KEY = "key-alice-0123456789abcdef"
ALICE = {"Authorization": f"Bearer {KEY}"}
ITEM = {"product": "solar lamp", "channel": "sms", "variants": 1}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    gate = threading.Event()  # the model never loads: accepted jobs stay queued
    built = app(FakeRunner(gate=gate), data_dir=tmp_path, api_keys=f"alice:{KEY}")
    async with serving(built, ready=False) as c:
        yield c
        gate.set()


async def test_a_queued_job_shows_no_progress_and_no_results_yet(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/v1/jobs", json={"items": [ITEM, ITEM]}, headers=ALICE)
    assert created.status_code == 202
    job = JobOut.model_validate(
        (await client.get(created.headers["location"], headers=ALICE)).json()
    )
    assert (job.status, job.total, job.done, job.failed, job.progress) == ("queued", 2, 0, 0, 0.0)
    assert (job.results, job.deliveries, job.finished_at, job.asset) == ([], [], None, None)
    assert job.created_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("path", "status"), [("/v1/jobs/job_nothing", 404), ("/v1/jobs/" + "j" * 41, 422)]
)
async def test_ids_that_name_no_job_are_404_and_overlong_ones_422(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    await client.post("/v1/jobs", json={"items": [ITEM]}, headers=ALICE)  # the store is ready
    assert (await client.get(path, headers=ALICE)).status_code == status
    assert (await client.delete(path, headers=ALICE)).status_code == status


async def test_without_a_server_secret_there_is_no_webhook_secret_and_no_webhook(
    client: httpx.AsyncClient,
) -> None:
    secret = await client.get("/v1/jobs/webhook-secret", headers=ALICE)
    assert (secret.status_code, secret.json()["error"]["field"]) == (422, "webhook_url")
    hooked = await client.post(
        "/v1/jobs", json={"items": [ITEM], "webhook_url": "https://hooks.example.com/x"},
        headers=ALICE,
    )  # fmt: skip
    assert (hooked.status_code, hooked.json()["error"]["field"]) == (422, "webhook_url")


async def test_a_bad_field_of_an_asset_jobs_request_is_named_inside_it(
    client: httpx.AsyncClient,
) -> None:
    request = {"product": "solar lamp", "final_url": "javascript:alert(1)"}
    response = await client.post(
        "/v1/jobs", json={"kind": "google-ads-rsa", "request": request}, headers=ALICE
    )
    assert (response.status_code, response.json()["error"]["field"]) == (422, "request.final_url")
    assert "javascript" not in response.text


async def test_a_batch_over_the_item_cap_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/jobs", json={"items": [ITEM] * (MAX_ITEMS + 1)}, headers=ALICE
    )
    assert (response.status_code, response.json()["error"]["field"]) == (422, "items")
