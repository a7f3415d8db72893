"""The real server process with the embedded SmolLM2 model, over a real socket."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Server

BRIEF = {
    "product": "Solar-powered phone charger",
    "description": "Charges a phone in two hours of sunlight; fits in a pocket.",
    "audience": "hikers",
    "channel": "google_ads_headline",
    "tone": "bold",
    "keywords": ["solar"],
    "variants": 3,
    "seed": 42,
}


def test_live_ready_and_deep_health(server: Server) -> None:
    assert httpx.get(f"{server.url}/health/live").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/health/ready").status_code == 200
    health = httpx.get(f"{server.url}/health").json()
    assert health["model"]["id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert health["model"]["device"] == "cpu"
    assert health["model"]["chat_template"] is True


def test_a_brief_gets_real_variants_from_the_embedded_model(server: Server) -> None:
    response = httpx.post(f"{server.url}/v1/copy", json=BRIEF, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert 1 <= len(body["variants"]) <= 3
    for variant in body["variants"]:
        assert variant["text"].strip()
        assert variant["limit"] == 30
        assert variant["fits"] == (variant["chars"] <= 30)
    assert body["usage"]["prompt_tokens"] > 20
    assert body["usage"]["completion_tokens"] > 0


def test_same_seed_same_copy(server: Server) -> None:
    brief = {**BRIEF, "channel": "email_subject", "seed": 7}
    first = httpx.post(f"{server.url}/v1/copy", json=brief, timeout=120).json()
    second = httpx.post(f"{server.url}/v1/copy", json=brief, timeout=120).json()
    assert [v["text"] for v in first["variants"]] == [v["text"] for v in second["variants"]]


def test_bad_input_gets_422_with_the_error_shape(server: Server) -> None:
    response = httpx.post(f"{server.url}/v1/copy", json={"product": "x", "variants": 99})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "variants"
    assert "99" not in response.text


def test_server_header_does_not_leak_details(server: Server) -> None:
    response = httpx.get(f"{server.url}/health/live")
    assert "server" not in response.headers


def test_every_returned_variant_fits_its_channel(server: Server) -> None:
    for channel, limit in (("google_ads_headline", 30), ("sms", None)):
        delivered = 0
        # A 135M model can miss a 30-character limit in every round for one seed (what it
        # writes for a seed changes with the forward pass's rounding); what is returned must
        # always fit, and some seed must deliver.
        for seed in (11, 12, 13):
            brief = {**BRIEF, "channel": channel, "variants": 3, "seed": seed}
            body = httpx.post(f"{server.url}/v1/copy", json=brief, timeout=180).json()
            assert body["delivered"] == len(body["variants"])
            assert body["complete"] == (body["delivered"] == 3)
            for variant in body["variants"]:
                assert variant["fits"], variant
                assert variant["chars"] <= variant["limit"]
                if limit is not None:
                    assert variant["limit"] == limit
            delivered += body["delivered"]
            if delivered:
                break
        assert delivered >= 1, channel


def test_batch_of_briefs(server: Server) -> None:
    items = [
        # Seeded: the same copy every run (grounding may reject a whole unlucky draw).
        {
            "product": "Cold brew coffee subscription",
            "channel": "email_subject",
            "variants": 2,
            "seed": 5,
        },
        {"product": "Noise-cancelling headphones", "channel": "x_post", "variants": 2, "seed": 5},
        {"product": "x", "variants": 0},
    ]
    response = httpx.post(f"{server.url}/v1/copy/batch", json={"items": items}, timeout=180)
    assert response.status_code == 200
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (2, 1)
    assert body["results"][2]["error"]["field"] == "variants"
    for item in body["results"][:2]:
        assert item["result"]["variants"]
