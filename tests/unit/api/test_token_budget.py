"""COPYGEN_TOKEN_BUDGET over the whole app on a fake runner (security review #1): every way to
generate is charged (streamed copy and chat, NDJSON batches, asset sets, job items), and
simultaneous requests overshoot the budget by about one request at most."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from limits import parse

from copygen.api.app import create_app
from copygen.budget import budget_identity
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.client import wait_ready
from tests.fakes import FakeRunner, spelled

KEY = "tenant-a-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
Call = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@asynccontextmanager
async def _app(tmp_path: Path, budget: str) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    config = Settings(
        warmup=False, data_dir=tmp_path, api_keys=f"a:{KEY}", token_budget=budget,  # type: ignore[arg-type]
    )  # fmt: skip
    runner = FakeRunner(lambda request, row: f"Bright solar light {spelled(row)}")
    app = create_app(config, engine=Engine(config, runner))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        yield c, app


def _brief(i: int, **more: Any) -> dict[str, Any]:
    return {"product": f"Solar lamp {spelled(i)}", "channel": "sms", "variants": 1, **more}


async def _streamed_copy(c: httpx.AsyncClient, i: int) -> httpx.Response:
    return await c.post("/v1/copy", json=_brief(i, stream=True), headers=AUTH)


async def _streamed_chat(c: httpx.AsyncClient, i: int) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": f"Say hi {i}"}], "stream": True}
    return await c.post("/v1/chat/completions", json=body, headers=AUTH)


async def _ndjson_batch(c: httpx.AsyncClient, i: int) -> httpx.Response:
    body = {"items": [_brief(2 * i), _brief(2 * i + 1)]}
    headers = {**AUTH, "Accept": "application/x-ndjson"}
    return await c.post("/v1/copy/batch", json=body, headers=headers)


async def _meta_ad(c: httpx.AsyncClient, i: int) -> httpx.Response:
    body = {"product": f"Solar lamp {spelled(i)}", "primary_texts": 1, "headlines": 1,
            "descriptions": 1}  # fmt: skip
    return await c.post("/v1/assets/meta-ad", json=body, headers=AUTH)


@pytest.mark.parametrize(
    ("call", "budget"),
    [
        (_streamed_copy, "300/hour"),
        (_streamed_chat, "40/hour"),
        (_ndjson_batch, "300/hour"),
        (_meta_ad, "300/hour"),
    ],  # fmt: skip
    ids=["streamed copy", "streamed chat", "ndjson batch", "meta ad set"],
)
async def test_every_way_to_generate_is_charged_until_the_budget_refuses(
    tmp_path: Path, call: Call, budget: str
) -> None:
    async with _app(tmp_path, budget) as (c, _):
        statuses = []
        for i in range(12):
            response = await call(c, i)
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
            assert response.status_code == 200, response.text
        assert statuses[0] == 200
        assert statuses[-1] == 429, statuses
        assert response.json()["error"]["type"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1


async def test_job_items_are_charged_as_they_run(tmp_path: Path) -> None:
    """The first chunk (8 items) is admitted and spends the budget; the rest fail with
    rate_limited; the next submission is refused."""
    async with _app(tmp_path, "100/hour") as (c, _):
        job = (await c.post("/v1/jobs", json={"items": [_brief(i) for i in range(10)]},
                            headers=AUTH)).json()  # fmt: skip
        for _ in range(400):
            done = (await c.get(f"/v1/jobs/{job['id']}", headers=AUTH)).json()
            if done["status"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.025)
        errors = [r["error"]["type"] for r in done["results"] if r["error"] is not None]
        assert (done["status"], done["done"]) == ("succeeded", 10)
        assert errors == ["rate_limited"] * 2
        again = await c.post("/v1/jobs", json={"items": [_brief(99)]}, headers=AUTH)
        assert again.status_code == 429


async def test_simultaneous_requests_overshoot_the_budget_by_one_request_at_most(
    tmp_path: Path,
) -> None:
    """Checked first and charged after, 20 simultaneous briefs were all admitted; each call
    now reserves its worst case, so the budget admits only what it can hold."""
    budget = 1000
    async with _app(tmp_path, f"{budget}/hour") as (c, app):
        answers = await asyncio.gather(
            *(c.post("/v1/copy", json=_brief(i), headers=AUTH) for i in range(20))
        )
        served = [a.json() for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 429]
        assert served
        assert refused
        assert {a.json()["error"]["type"] for a in refused} == {"rate_limited"}
        costs = [s["usage"]["prompt_tokens"] + s["usage"]["completion_tokens"] for s in served]
        spent = await app.state.limiter.add(parse(f"{budget}/hour"), budget_identity("a"), 0)
        assert spent == sum(costs)  # reservations were replaced by the real counts
        assert spent <= budget + max(costs)
