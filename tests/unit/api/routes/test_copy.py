"""POST /v1/copy and /v1/copy/batch through the app (fake runner): a stream is refused with a
status while the model loads (not opened and then failed), and a batch item naming a brand
this tenant does not have fails alone."""

from __future__ import annotations

import threading

from copygen.api.routes.copy import STREAM_IN_BATCH
from tests.builders import app
from tests.client import serving
from tests.fakes import FakeRunner, spelled


def _lamp(request: object, row: int) -> str:
    return f"A solar lamp for every porch {spelled(row + 1)}"


async def test_a_stream_asked_for_while_the_model_loads_is_a_503_not_a_stream() -> None:
    gate = threading.Event()
    async with serving(app(FakeRunner(_lamp, gate=gate)), ready=False) as client:
        response = await client.post(
            "/v1/copy", json={"product": "solar lamp", "variants": 1, "stream": True}
        )
        gate.set()
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["type"] == "not_ready"
    assert response.headers["retry-after"] == "5"


async def test_a_batch_item_naming_an_unknown_brand_fails_alone() -> None:
    runner = FakeRunner(_lamp)
    items = [
        {"product": "solar lamp", "channel": "sms", "variants": 1},
        {"product": "solar lamp", "channel": "sms", "variants": 1, "brand": "br_nobody"},
        {"product": "solar lamp", "variants": 1, "stream": True},
    ]
    async with serving(app(runner)) as client:
        body = (await client.post("/v1/copy/batch", json={"items": items})).json()
    assert (body["succeeded"], body["failed"]) == (1, 2)
    ok, unknown, streamed = body["results"]
    assert ok["result"]["variants"]
    assert (unknown["error"]["type"], unknown["error"]["field"]) == ("not_found", "brand")
    assert streamed["error"] == {"type": "invalid_request", "message": STREAM_IN_BATCH,
                                 "field": "stream"}  # fmt: skip
    assert len(runner.calls) == 1  # only the valid item reached the model
