"""The HTTP edge over an engine built on a fake runner: shapes, validation, errors."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.client import parse_sse, wait_ready
from tests.fakes import FakeRunner, product_of, spelled

CANARY = "CANARY-7f3a9b"


def _app(runner: FakeRunner, **settings: object) -> FastAPI:
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    return create_app(config, engine=Engine(config, runner))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = _app(FakeRunner(lambda request, row: f'"Charge with the sun {spelled(row)}"'))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        yield c


async def test_copy_returns_the_contract_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/copy", json={"product": "Solar charger", "variants": 2})
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"id", "model", "variants", "cached", "cache_tier", "usage", "timings_ms"}
    assert body["model"] == "fake/model"
    assert body["requested"] == 2
    assert body["cached"] is False
    assert body["cache_tier"] is None
    assert set(body["timings_ms"]) >= {"queue", "generation", "total"}
    # 2 variants oversampled to 4 rows of 5 words and a stop token each
    assert body["usage"]["completion_tokens"] == 24
    assert len(body["variants"]) == 2  # distinct after cleaning ("...sun 0" / "...sun 1")
    for variant in body["variants"]:
        assert set(variant) == {
            "text", "chars", "limit", "fits", "keywords_missing", "score", "checks",
        }  # fmt: skip
        checks = variant["checks"]
        assert (checks["fits"], checks["chars"], checks["flags"]) == (True, variant["chars"], [])
        assert set(checks["readability"]) == {"ease", "grade"}
        assert checks["relevance"] is None
        assert variant["limit"] == 30
        assert not variant["text"].startswith('"')
    assert response.headers["x-request-id"]


async def test_request_id_is_returned(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "product"),
        ({"product": ""}, "product"),
        ({"product": "x", "variants": 0}, "variants"),
        ({"product": "x", "variants": 11}, "variants"),
        ({"product": "x", "temperature": 3}, "temperature"),
        ({"product": "x", "channel": CANARY}, "channel"),
        ({"product": "x", "tone": CANARY * 10}, "tone"),  # free text, but over 60 characters
        ({"product": "x", "framework": CANARY}, "framework"),
        ({"product": "x", "cache": CANARY}, "cache"),
        ({"product": "x", CANARY: 1}, CANARY),
        ({"product": CANARY * 100}, "product"),
        ({"product": "x", "keywords": [CANARY * 10]}, "keywords.0"),
        ({"product": "x", "language": CANARY}, "language"),
        ({"product": ["x"]}, "product"),
        ({"product": "x", "tone": "\u0000\u200b "}, "tone"),  # nothing printable
        ({"product": "x", "facts": ["f"] * 21}, "facts"),
        ({"product": "x", "facts": [CANARY * 30]}, "facts.0"),
        ({"product": "x", "facts": [""]}, "facts.0"),
        ({"product": "x", "grounding": CANARY}, "grounding"),
    ],
)
async def test_bad_input_gets_422_with_the_error_shape(
    client: httpx.AsyncClient, payload: dict[str, object], field: str
) -> None:
    response = await client.post("/v1/copy", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "validation_error"
    assert body["error"]["message"]
    if field != CANARY:
        assert body["error"]["field"] == field
    assert CANARY not in body["error"]["message"]
    assert CANARY * 2 not in response.text


async def test_unknown_field_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/copy", json={"product": "x", "colour": "red"})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "Extra inputs are not permitted"


@pytest.mark.parametrize(
    "raw", [b"{", b'{"product": "x",}', b"\xff\xfe", b'{"product": NaN}', b"[" * 5000]
)
async def test_malformed_json_gets_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/v1/copy", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert set(response.json()) == {"error"}


async def test_unknown_route_and_method_use_the_error_shape(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    wrong = await client.get("/v1/copy")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["type"] == "method_not_allowed"


async def test_copy_streams_drafts_then_the_checked_result(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/copy", json={"product": "Solar charger", "variants": 2, "stream": True}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    names = [name for name, _ in events]
    assert names[0] == "draft"
    assert names[-2:] == ["result", None]
    assert events[-1][1] == "[DONE]"
    result = json.loads(events[-2][1])
    assert result["requested"] == 2
    drafts = [json.loads(data) for name, data in events if name == "draft"]
    assert {d["row"] for d in drafts} == {0, 1, 2, 3}
    assert result["timings_ms"]["first_token"] > 0


async def test_discovery_routes_read_the_tables(client: httpx.AsyncClient) -> None:
    channels = (await client.get("/v1/channels")).json()["channels"]
    by_id = {c["id"]: c for c in channels}
    assert by_id["google_ads_headline"]["limit"] == 30
    assert by_id["sms"]["counting"] == "sms"
    tones = (await client.get("/v1/tones")).json()
    assert {"friendly", "professional"} <= {t["id"] for t in tones["tones"]}
    assert (tones["free_text"], tones["max_length"]) == (True, 60)
    frameworks = (await client.get("/v1/frameworks")).json()["frameworks"]
    assert {f["id"] for f in frameworks} == {"aida", "pas", "bab", "fab", "4u"}


async def test_case_insensitive_ids_are_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/copy", json={"product": "x", "channel": "SMS", "framework": "AIDA", "variants": 1}
    )
    assert response.status_code == 200
    assert response.json()["channel"] == "sms"


async def test_readiness_is_503_until_the_model_is_warm() -> None:
    gate = threading.Event()
    app = _app(FakeRunner(gate=gate))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        assert (await c.get("/health/live")).status_code == 200
        not_ready = await c.get("/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.headers["retry-after"] == "5"
        assert not_ready.json()["error"]["type"] == "not_ready"
        early = await c.post("/v1/copy", json={"product": "x"})
        assert early.status_code == 503
        gate.set()
        await wait_ready(c)
        assert (await c.get("/health")).json()["model"]["device"] == "cpu"


async def test_deadline_gives_504() -> None:
    hang = threading.Event()
    app = _app(FakeRunner(hang=hang), request_timeout_s=0.2)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        response = await c.post("/v1/copy", json={"product": "x"})
        hang.set()
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "deadline_exceeded"


async def test_openapi_schema_lists_the_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/v1/copy", "/v1/channels", "/health/ready"} <= set(paths)


async def test_batch_validates_items_one_by_one(client: httpx.AsyncClient) -> None:
    items = [
        {"product": "Solar charger", "variants": 1},
        {"product": "x", "channel": CANARY},
        {"product": "Coffee", "channel": "sms", "variants": 2},
        {"product": "x", "stream": True},
    ]
    response = await client.post("/v1/copy/batch", json={"items": items})
    assert response.status_code == 200
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (2, 2)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert results[0]["result"]["requested"] == 1
    assert results[1]["error"]["field"] == "channel"
    assert results[2]["result"]["channel"] == "sms"
    assert results[3]["error"]["field"] == "stream"
    assert CANARY not in response.text


@pytest.mark.parametrize("payload", [{"items": []}, {"items": [{}] * 51}, {"briefs": []}, []])
async def test_batch_request_level_errors(client: httpx.AsyncClient, payload: object) -> None:
    response = await client.post("/v1/copy/batch", json=payload)
    assert response.status_code == 422
    assert set(response.json()) == {"error"}


async def test_batch_items_share_one_runner_call() -> None:
    runner = FakeRunner(lambda request, row: f"{product_of(request)} {'abcdefgh'[row]}")
    app = _app(runner, max_batch_size=64)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        products = ("kettle", "lamp", "teapot", "blanket", "candle", "mug", "rug", "vase")
        items = [{"product": f"{products[i % 8]} {spelled(i)}", "variants": 2, "seed": i}
                 for i in range(10)]  # fmt: skip
        response = await c.post("/v1/copy/batch", json={"items": items})
    assert response.json()["succeeded"] == 10
    assert len(runner.calls) == 1
    assert len(runner.calls[0]) == 10


async def test_a_full_queue_answers_429_with_retry_after_before_any_model_work() -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    app = _app(runner, max_queue=1, max_batch_size=2)  # one brief = 2 rows (oversampled)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        body = {"product": "x", "variants": 1, "cache": "bypass"}  # no sharing, no hits
        running = asyncio.create_task(c.post("/v1/copy", json=body))
        while not runner.joins:
            await asyncio.sleep(0.001)
        queued = asyncio.create_task(c.post("/v1/copy", json=body))
        await asyncio.sleep(0.05)
        rejected = await c.post("/v1/copy", json=body)
        assert rejected.status_code == 429
        assert rejected.headers["retry-after"] == "1"
        assert rejected.json()["error"]["type"] == "queue_full"
        hang.set()
        assert (await running).status_code == 200
        assert (await queued).status_code == 200
    assert len(runner.joins) == 2  # the rejected request never reached the runner


async def test_a_free_text_tone_and_facts_reach_the_prompt() -> None:
    runner = FakeRunner()
    app = _app(runner)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        response = await c.post(
            "/v1/copy",
            json={
                "product": "kettle",
                "tone": "Quirky but professional",
                "facts": ["ships free over $50"],
                "variants": 1,
            },
        )
    assert response.status_code == 200
    [[request]] = runner.calls
    prompt = request.messages[-1].content
    assert "Tone: <tone>Quirky but professional</tone>." in prompt
    assert "- ships free over $50" in prompt


async def test_grounding_flags_what_the_flag_policy_lets_through() -> None:
    texts = ["Tesla chargers for you", "Sun chargers for you"]
    runner = FakeRunner(lambda request, row: texts[row % 2])
    app = _app(runner, max_rounds=1)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        brief = {"product": "charger", "variants": 2, "cache": "bypass"}
        strict = (await c.post("/v1/copy", json=brief)).json()
        flagged = (await c.post("/v1/copy", json={**brief, "grounding": "flag"})).json()
    assert [v["text"] for v in strict["variants"]] == ["Sun chargers for you"]
    assert strict["complete"] is False
    assert [v["checks"]["flags"] for v in flagged["variants"]] == [
        [],
        [{"type": "unsupported_entity", "text": "Tesla"}],
    ]
