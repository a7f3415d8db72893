"""The brand and feedback routes over an app with a fake runner and a real SQLite file:
CRUD with ETag/If-Match, tenant isolation, a brand in /v1/copy (prompt, forbidden terms,
cache keys), feedback, its export, and what logs and metrics never show."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.domain import GenerationRequest
from copygen.engine.engine import Engine
from tests.client import wait_ready
from tests.fakes import FakeRunner, spelled

KEY_A, KEY_B = "key-alice-0123456789abcdef", "key-bob-0123456789abcdef"
ALICE = {"Authorization": f"Bearer {KEY_A}"}
BOB = {"Authorization": f"Bearer {KEY_B}"}
CANARY = "CANARYBRAND4c1d"

ACME = {
    "name": "Acme Solar",
    "voice": "Warm, plain, never pushy",
    "tone": "friendly",
    "preferred_terms": ["sunny"],
    "forbidden_terms": ["cheap"],
    "facts": ["Founded in 1999"],
    "examples": [{"channel": "sms", "text": "Sunny days ahead: charge anywhere with Acme"}],
}


def reply(request: GenerationRequest, row: int) -> str:
    """Copy that says what the prompt's brand block holds: row 0 uses the forbidden term."""
    system = request.messages[0].content
    if "Acme Solar" not in system:
        return f"Charge with the sun {spelled(row)}"
    if row == 0:
        return "Cheap solar charger for everyone"
    voice = "sunny" if "Warm, plain" in system else "bright"
    return f"A {voice} charge with Acme Solar {spelled(row)}"


def _app(tmp_path: Path) -> FastAPI:
    config = Settings(warmup=False, data_dir=tmp_path, api_keys=f"alice:{KEY_A},bob:{KEY_B}")  # type: ignore[arg-type]
    return create_app(config, engine=Engine(config, FakeRunner(reply)))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = _app(tmp_path)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        yield c


async def counted(client: httpx.AsyncClient, line: str) -> str:
    """/metrics once it shows ``line`` (the stored counts are re-read in the background, up to
    a second after a write), or as it is after 5 s."""
    for _ in range(50):
        metrics = (await client.get("/metrics")).text
        if line in metrics:
            break
        await asyncio.sleep(0.1)
    return metrics


async def _create(client: httpx.AsyncClient, body: dict[str, object] | None = None) -> dict:
    response = await client.post("/v1/brands", json=body or ACME, headers=ALICE)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_brand_crud_with_etags_and_stale_writes_refused(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/brands", json=ACME, headers=ALICE)
    assert created.status_code == 201
    brand = created.json()
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"/v1/brands/{brand['id']}"
    assert (brand["version"], brand["name"], brand["examples"][0]["source"]) == (
        1, "Acme Solar", "manual",
    )  # fmt: skip
    url = f"/v1/brands/{brand['id']}"
    got = await client.get(url, headers=ALICE)
    assert (got.status_code, got.headers["etag"]) == (200, '"1"')

    put = await client.put(
        url, json={**ACME, "voice": "Bold"}, headers={**ALICE, "If-Match": '"1"'}
    )
    assert (put.status_code, put.headers["etag"], put.json()["voice"]) == (200, '"2"', "Bold")
    stale = await client.put(url, json=ACME, headers={**ALICE, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["type"] == "precondition_failed"

    patched = await client.patch(url, json={"audience": "campers"}, headers=ALICE)
    assert patched.status_code == 200
    body = patched.json()
    assert (body["version"], body["audience"], body["voice"]) == (3, "campers", "Bold")
    assert (await client.delete(url, headers={**ALICE, "If-Match": '"2"'})).status_code == 412
    assert (await client.delete(url, headers={**ALICE, "If-Match": '"3"'})).status_code == 204
    missing = await client.get(url, headers=ALICE)
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "not_found")


async def test_another_tenant_gets_404_for_every_brand_route(client: httpx.AsyncClient) -> None:
    brand = await _create(client)
    url = f"/v1/brands/{brand['id']}"
    answers = [
        await client.get(url, headers=BOB),
        await client.put(url, json=ACME, headers=BOB),
        await client.patch(url, json={"voice": "x"}, headers=BOB),
        await client.delete(url, headers=BOB),
        await client.post(f"{url}/examples", json={"feedback_id": 1}, headers=BOB),
        await client.post("/v1/copy", json={"product": "Lamp", "brand": brand["id"]}, headers=BOB),
    ]
    assert [a.status_code for a in answers] == [404] * 6
    assert (await client.get("/v1/brands", headers=BOB)).json() == {"data": [], "next": None}
    assert (await client.get(url, headers=ALICE)).json()["version"] == 1


async def test_brands_page_with_a_cursor(client: httpx.AsyncClient) -> None:
    ids = [(await _create(client, {**ACME, "name": f"Brand {i}"}))["id"] for i in range(3)]
    first = (await client.get("/v1/brands?limit=2", headers=ALICE)).json()
    rest = (await client.get(f"/v1/brands?limit=2&after={first['next']}", headers=ALICE)).json()
    assert [b["id"] for b in first["data"] + rest["data"]] == ids
    assert rest["next"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ACME, "name": ""}, "name"),
        ({**ACME, "voice": CANARY * 40}, "voice"),
        ({**ACME, "surprise": CANARY}, None),  # a name the caller chose: never echoed
        ({**ACME, "examples": [{"channel": CANARY, "text": "x"}]}, "examples.0.channel"),
        ({**ACME, "examples": [{"channel": "sms", "text": "x"}] * 51}, "examples"),
        ({**ACME, "forbidden_terms": [CANARY * 5]}, "forbidden_terms.0"),
    ],
)
async def test_invalid_brands_are_refused_without_echoing_them(
    client: httpx.AsyncClient, body: dict[str, object], field: str | None
) -> None:
    response = await client.post("/v1/brands", json=body, headers=ALICE)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert CANARY not in response.text


async def test_a_brief_with_a_brand_uses_its_voice_and_never_its_forbidden_terms(
    client: httpx.AsyncClient,
) -> None:
    brand = await _create(client)
    body = {"product": "Solar charger", "channel": "sms", "brand": brand["id"], "seed": 1}
    response = await client.post("/v1/copy", json=body, headers=ALICE)
    assert response.status_code == 200
    texts = [v["text"] for v in response.json()["variants"]]
    assert texts
    assert all("sunny charge with Acme Solar" in t for t in texts)  # the brand's name allowed
    assert not any("Cheap" in t for t in texts)
    voices = {v["checks"]["voice"] for v in response.json()["variants"]}
    assert voices == {0.05}  # one preferred term used
    unknown = await client.post("/v1/copy", json={**body, "brand": "brand-nope"}, headers=ALICE)
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (404, "brand")


async def test_editing_a_brand_never_serves_its_old_copy(client: httpx.AsyncClient) -> None:
    brand = await _create(client)
    body = {"product": "Solar charger", "channel": "sms", "brand": brand["id"], "seed": 3}
    first = (await client.post("/v1/copy", json=body, headers=ALICE)).json()
    again = (await client.post("/v1/copy", json=body, headers=ALICE)).json()
    assert (first["cached"], again["cached"]) == (False, True)
    edit = await client.patch(
        f"/v1/brands/{brand['id']}", json={"voice": "Loud and proud"}, headers=ALICE
    )
    assert edit.status_code == 200
    after = (await client.post("/v1/copy", json=body, headers=ALICE)).json()
    assert after["cached"] is False
    assert all("bright charge" in v["text"] for v in after["variants"])


async def test_feedback_teaches_the_brand_and_exports_preference_pairs(
    client: httpx.AsyncClient,
) -> None:
    brand = await _create(client, {**ACME, "auto_learn": True})
    body = {"product": "Solar charger", "channel": "sms", "brand": brand["id"], "variants": 2}
    copy = (await client.post("/v1/copy", json=body, headers=ALICE)).json()
    [best, other] = [v["text"] for v in copy["variants"]]

    up = await client.post(
        "/v1/feedback",
        json={"copy_id": copy["id"], "variant": best, "rating": "up", "note": CANARY},
        headers=ALICE,
    )
    assert up.status_code == 201, up.text
    assert up.json()["learned"] is True
    stored = (await client.get(f"/v1/brands/{brand['id']}", headers=ALICE)).json()
    assert stored["examples"][-1] == {"channel": "sms", "text": best, "source": "feedback"}
    down = await client.post(
        "/v1/feedback",
        json={"copy_id": copy["id"], "variant": 1, "rating": "down"},
        headers=ALICE,
    )
    assert (down.status_code, down.json()["learned"]) == (201, False)
    assert (
        await client.post(
            "/v1/feedback", json={"copy_id": copy["id"], "variant": 0, "rating": "up"}, headers=BOB
        )
    ).status_code == 404

    export = await client.get(f"/v1/feedback?brand={brand['id']}", headers=ALICE)
    assert export.headers["content-type"].startswith("application/x-ndjson")
    pairs = [json.loads(line) for line in export.text.splitlines()]
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(best, other), (best, other)]
    assert pairs[0]["prompt"][0]["role"] == "system"
    assert (await client.get("/v1/feedback", headers=BOB)).text == ""

    # the down-rated phrasing now ranks lower for this brand
    again = (await client.post("/v1/copy", json={**body, "seed": 9}, headers=ALICE)).json()
    penalised = [v for v in again["variants"] if v["checks"]["voice"] < 0]
    assert penalised

    metrics = await counted(client, 'copygen_feedback_stored{rating="down"} 1.0')
    assert "copygen_brands 1.0" in metrics
    store = (await client.get("/health")).json()["store"]
    assert (store["database"], store["migrated"], store["remember_failures"]) == ("sqlite", True, 0)
    assert 'copygen_feedback_stored{rating="down"} 1.0' in metrics


async def test_promoting_feedback_into_a_brands_examples(client: httpx.AsyncClient) -> None:
    brand = await _create(client)
    body = {"product": "Solar charger", "channel": "sms", "brand": brand["id"]}
    copy = (await client.post("/v1/copy", json=body, headers=ALICE)).json()
    rated = await client.post(
        "/v1/feedback",
        json={"copy_id": copy["id"], "variant": 0, "rating": "up", "edited_text": "Sunny, always"},
        headers=ALICE,
    )
    assert rated.json()["learned"] is False  # auto_learn is off
    url = f"/v1/brands/{brand['id']}/examples"
    promoted = await client.post(url, json={"feedback_id": rated.json()["id"]}, headers=ALICE)
    assert promoted.status_code == 201
    assert promoted.json()["examples"][-1]["text"] == "Sunny, always"
    both = await client.post(
        url, json={"feedback_id": 1, "example": {"channel": "sms", "text": "x"}}, headers=ALICE
    )
    assert both.status_code == 422


async def test_brand_and_feedback_text_never_reach_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    brand = await _create(client, {**ACME, "voice": CANARY, "facts": [CANARY]})
    body = {"product": "Solar charger", "channel": "sms", "brand": brand["id"]}
    copy = (await client.post("/v1/copy", json=body, headers=ALICE)).json()
    await client.post(
        "/v1/feedback",
        json={"copy_id": copy["id"], "variant": 0, "rating": "down", "note": CANARY,
              "edited_text": CANARY},
        headers=ALICE,
    )  # fmt: skip
    assert CANARY not in caplog.text
