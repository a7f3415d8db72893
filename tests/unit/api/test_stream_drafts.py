"""Streamed drafts over the app, from a fake runner whose deltas cut words in two (security
review #12): a banned word (the brief's, the brand-safety list's) never reaches a draft event,
whichever deltas it arrives in."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

import httpx

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from copygen.engine.protocols import RowSpec
from copygen.generation import RowEvent, RowKey
from tests.client import parse_sse, wait_ready
from tests.fakes import FakeRunner

REPLY = "Solar lamp: no shit, a cheapest miracle cure"


class SplitRunner(FakeRunner):
    """Replies in 3-character deltas ("Sol", "ar ", "lam", …), so words arrive split."""

    def __init__(self) -> None:
        super().__init__(lambda request, row: REPLY)
        self.pieces: dict[RowKey, tuple[list[str], int]] = {}

    def step(self, join: Sequence[RowSpec], drop: Collection[RowKey]) -> list[RowEvent]:
        for key in drop:
            self.pieces.pop(key, None)
        for spec in join:
            text = REPLY
            self.pieces[spec.key] = ([text[i : i + 3] for i in range(0, len(text), 3)], 0)
        events = []
        for key, (pieces, sent) in list(self.pieces.items()):
            done = sent + 1 == len(pieces)
            events.append(RowEvent(key, pieces[sent], "stop" if done else None,
                                   "".join(pieces) if done else "", prompt_tokens=10,
                                   completion_tokens=sent + 1))  # fmt: skip
            if done:
                del self.pieces[key]
            else:
                self.pieces[key] = (pieces, sent + 1)
        return events


async def test_banned_words_split_across_deltas_never_reach_a_draft() -> None:
    config = Settings(warmup=False, max_rounds=1)
    app = create_app(config, engine=Engine(config, SplitRunner()))
    brief = {"product": "Solar lamp", "variants": 2, "banned_words": ["cheap"], "stream": True,
             "cache": "bypass"}  # fmt: skip
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        response = await c.post("/v1/copy", json=brief)
    assert response.status_code == 200
    drafts: dict[int, str] = {}
    for name, data in parse_sse(response.text):
        if name == "draft":
            event = json.loads(data)
            drafts[event["row"]] = drafts.get(event["row"], "") + event["delta"]
            for banned in ("shit", "cheap", "miracle cure"):
                assert banned not in drafts[event["row"]].lower()
    assert drafts
    assert set(drafts.values()) == {"Solar lamp: no •••, a ••• •••"}
