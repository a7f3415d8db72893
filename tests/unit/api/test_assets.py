"""Asset sets and exports over an app with a fake runner: the RSA and Meta sets' shape and
rules (checked here with the test's own counting, not the code under test), CSV exports that
Python's csv module reads back (BOM, quoting, the formula guard), and a batch as JSON lines."""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest

from copygen.api.app import create_app
from copygen.api.exports import csv_text
from copygen.config import Settings
from copygen.domain import GenerationRequest
from copygen.engine.engine import Engine
from tests.client import wait_ready
from tests.fakes import FakeRunner

WORDS = ["Bright", "Quiet", "Sunny", "Swift", "Handy", "Clever", "Bold", "Fresh", "Smart",
         "Light", "Brave", "Calm", "Rapid", "Tidy", "Neat", "Keen", "Vivid", "Crisp", "Prime",
         "Sleek"]  # fmt: skip

REPLIES = {
    "Google Ads headline": "{W} {x} charger",
    "Google Ads description": "{W} sun, {x} hikes, {y} days. Shop now.",
    "display path": "{W}-Sun",
    "primary text": "{W} solar power for {x} hikers. Shop now!",
    "Facebook/Instagram ad headline": "{W} {x} charging",
    "link description": "{W} and {x}",
}


def reply(request: GenerationRequest, row: int) -> str:
    """Distinct copy per (part seed, row); a primed answer ("Solar", "Get") continues it."""
    prompt = request.messages[-1].content
    first = zlib.crc32(f"{request.sampling.seed}:{row}:{request.prefix}".encode())
    word, x, y = (WORDS[(first >> shift) % len(WORDS)] for shift in (0, 8, 16))
    for marker, template in REPLIES.items():
        if marker in prompt:
            text = template.format(W=word, x=x.lower(), y=y.lower())
            return f" {text[0].lower()}{text[1:]}" if request.prefix else text
    return f"{word} solar charger copy"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    config = Settings(warmup=False)
    app = create_app(config, engine=Engine(config, FakeRunner(reply)))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        yield c


BRIEF = {"product": "Solar phone charger", "keywords": ["solar"], "audience": "hikers"}
RSA = {**BRIEF, "final_url": "https://example.com/charger"}


def google_units(text: str) -> int:
    """Google Ads counts a wide (East Asian full-width or wide) character as two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def near_duplicates(texts: list[str]) -> int:
    words = [set(re.findall(r"\w+", t.casefold())) for t in texts]
    return sum(
        1 for i, a in enumerate(words) for b in words[i + 1 :] if len(a & b) / len(a | b) >= 0.8
    )


async def test_a_responsive_search_ad_meets_every_rule_of_the_format(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/assets/google-ads-rsa", json=RSA)
    assert response.status_code == 200, response.text
    body = response.json()
    headlines = [h["text"] for h in body["headlines"]]
    descriptions = [d["text"] for d in body["descriptions"]]
    assert (len(headlines), len(descriptions)) == (15, 4)
    assert all(google_units(t) <= 30 for t in headlines)
    assert all(google_units(t) <= 90 for t in descriptions)
    assert all(0 < google_units(p) <= 15 and "/" not in p for p in body["paths"])
    assert near_duplicates(headlines) == near_duplicates(descriptions) == 0
    assert sum("solar" in t.casefold() for t in headlines) >= 3
    assert any(t.startswith("Get ") for t in headlines)  # the call-to-action part
    assert not {t.casefold() for t in headlines} & {p.casefold() for p in body["paths"]}
    assert [h["pin"] for h in body["headlines"]].count(1) == 1
    assert body["checks"]["passed"] is True
    assert body["checks"]["failures"] == []


async def test_the_rsa_as_google_ads_editor_csv(client: httpx.AsyncClient) -> None:
    body = {**RSA, "campaign": "Summer, \"hikers\"", "ad_group": "=chargers", "path1": "Solar",
            "path2": "Charger"}  # fmt: skip
    as_json = (await client.post("/v1/assets/google-ads-rsa", json=body)).json()
    response = await client.post(
        "/v1/assets/google-ads-rsa", json=body, headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith("\ufeff".encode())
    [row] = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert row["Campaign"] == 'Summer, "hikers"'
    assert row["Ad group"] == "'=chargers"  # no spreadsheet evaluates it
    assert [row[f"Headline {i}"] for i in range(1, 16)] == [h["text"] for h in as_json["headlines"]]
    assert [row[f"Headline {i} position"] for i in range(1, 16)] == [
        str(h["pin"]) if h["pin"] else "" for h in as_json["headlines"]
    ]
    assert [row[f"Description {i}"] for i in range(1, 5)] == [
        d["text"] for d in as_json["descriptions"]
    ]
    assert (row["Final URL"], row["Path 1"], row["Path 2"]) == (
        RSA["final_url"],
        "Solar",
        "Charger",
    )


async def test_a_meta_ad_set_and_its_bulk_sheet(client: httpx.AsyncClient) -> None:
    body = {**BRIEF, "link": "https://example.com", "campaign": "C", "ad_set": "S"}
    made = (await client.post("/v1/assets/meta-ad", json=body)).json()
    assert [len(made[k]) for k in ("primary_texts", "headlines", "descriptions")] == [5, 5, 5]
    assert all(len(t["text"]) <= 30 for t in made["descriptions"])
    assert made["checks"]["passed"] is True
    sheet = await client.post("/v1/assets/meta-ad", json=body, headers={"Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert [r["Title"] for r in rows] == [h["text"] for h in made["headlines"]]
    assert [r["Body"] for r in rows] == [t["text"] for t in made["primary_texts"]]
    assert {r["Link"] for r in rows} == {"https://example.com"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**RSA, "channel": "sms"}, None),
        ({**RSA, "final_url": "javascript:alert(1)"}, "final_url"),
        ({**RSA, "path1": "solar/charger"}, "path1"),
        ({**RSA, "headlines": 16}, "headlines"),
    ],
)
async def test_invalid_asset_requests_are_refused(
    client: httpx.AsyncClient, body: dict[str, object], field: str | None
) -> None:
    response = await client.post("/v1/assets/google-ads-rsa", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert "javascript" not in response.text


def test_csv_cells_round_trip_quoting_and_the_formula_guard() -> None:
    cells = ['a "quoted", value', "two\nlines", "=SUM(A1:A9)", "+44 20", "-5%", "@here",
             "\tindent", "plain", "naïve ✓"]  # fmt: skip
    text = csv_text(["x"] * len(cells), [cells, [1, 2.5, True, None, "", "", "", "", ""]])
    assert text.startswith("\ufeff")
    assert "\r\n" in text
    header, first, second = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert first == ['a "quoted", value', "two\nlines", "'=SUM(A1:A9)", "'+44 20", "'-5%",
                     "'@here", "'\tindent", "plain", "naïve ✓"]  # fmt: skip
    assert second[:4] == ["1", "2.5", "True", ""]


async def test_a_batch_streams_json_lines_as_items_finish(client: httpx.AsyncClient) -> None:
    items = [{**BRIEF, "channel": "sms"}, {"product": ""}, {**BRIEF, "channel": "x_post"}]
    response = await client.post(
        "/v1/copy/batch", json={"items": items}, headers={"Accept": "application/x-ndjson"}
    )
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["index"] == 1
    assert lines[0]["error"]["field"] == "product"
    assert sorted(line["index"] for line in lines) == [0, 1, 2]
    assert all(line["result"]["variants"] for line in lines[1:])

    sheet = await client.post("/v1/copy/batch", json={"items": items},
                              headers={"Accept": "text/csv"})  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert {r["Item"] for r in rows} == {"0", "1", "2"}
    assert [r["Error"] for r in rows if r["Item"] == "1"] == ["validation_error"]
    assert {r["Channel"] for r in rows if r["Item"] == "2"} == {"x_post"}
