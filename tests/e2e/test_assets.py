"""A Google Ads responsive search ad from the real embedded model, in a real server: every
rule of the format, checked with this test's own counting (not the code under test)."""

from __future__ import annotations

import csv
import io
import re
import unicodedata

import httpx

from tests.e2e.conftest import Server

RSA = {
    "product": "Solar phone charger",
    "description": "Charges a phone in two hours of sunlight.",
    "audience": "hikers",
    "keywords": ["solar"],
    "facts": ["weighs 280 g", "waterproof to 1 m"],
    "final_url": "https://example.com/solar",
    "path1": "Solar",
    "path2": "Chargers",
    "seed": 11,
    "headlines": 10,  # a full set (Google takes 3 to 15); 15 only adds model time to the suite
}
#: Calls to action a reader would recognise (the test's own list).
ACTIONS = re.compile(r"\b(get|shop|buy|order|try|discover|explore|start|grab|save|see|book|"
                     r"join|find|charge up|learn)\b", re.IGNORECASE)  # fmt: skip


def google_units(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def jaccard(a: str, b: str) -> float:
    x, y = set(re.findall(r"\w+", a.casefold())), set(re.findall(r"\w+", b.casefold()))
    return len(x & y) / len(x | y) if x | y else 1.0


def test_the_embedded_model_writes_a_responsive_search_ad_that_meets_the_format(
    server: Server,
) -> None:
    response = httpx.post(f"{server.url}/v1/assets/google-ads-rsa", json=RSA, timeout=300)
    assert response.status_code == 200, response.text
    body = response.json()
    headlines = [h["text"] for h in body["headlines"]]
    descriptions = [d["text"] for d in body["descriptions"]]
    assert 3 <= len(headlines) <= 10
    assert 2 <= len(descriptions) <= 4
    assert all(0 < google_units(t) <= 30 for t in headlines), headlines
    assert all(0 < google_units(t) <= 90 for t in descriptions), descriptions
    for group in (headlines, descriptions):
        assert all(jaccard(a, b) < 0.8 for i, a in enumerate(group) for b in group[i + 1 :])
    assert sum("solar" in t.casefold() for t in headlines) >= 3, headlines
    assert any(ACTIONS.search(t) for t in headlines), headlines
    assert not {t.casefold() for t in headlines} & {"solar", "chargers"}
    assert body["checks"]["passed"] is True, body["checks"]

    sheet = httpx.post(f"{server.url}/v1/assets/google-ads-rsa", json=RSA,
                       headers={"Accept": "text/csv"}, timeout=300)  # fmt: skip
    [row] = list(csv.DictReader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert [row[f"Headline {i}"] for i in range(1, len(headlines) + 1)] == headlines
    assert row["Final URL"] == RSA["final_url"]
