"""The backend client against a real HTTP server on a loopback port that answers what a test
tells it: what copygen does with a backend's hostile or broken answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from copygen.backends.client import BackendCallError, OpenAIClient
from copygen.backends.job import Row
from copygen.backends.wire import stream_rows
from copygen.generation import RowEvent


class StubHandler(BaseHTTPRequestHandler):
    """Every request gets the server's ``reply``: (status, headers, body)."""

    server: StubServer

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, body = self.server.reply
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    reply: tuple[int, dict[str, str], bytes] = (200, {}, b"")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer(("127.0.0.1", 0), StubHandler)
    thread = threading.Thread(target=server.serve_forever, name="openai-stub", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(stub: StubServer) -> OpenAIClient:
    return OpenAIClient(stub.url, api_key=None, timeout_s=5, max_connections=2)


@pytest.mark.parametrize(
    "header",
    [
        "99999999",
        "9" * 5000,  # past int()'s digit limit
        formatdate(time.mktime((2099, 1, 1, 0, 0, 0, 0, 0, 0)), usegmt=True),
    ],
    ids=["three-years", "5000-digits", "a-date-in-2099"],
)
async def test_a_backends_retry_after_is_obeyed_for_at_most_a_minute(
    stub: StubServer, header: str
) -> None:
    stub.reply = (429, {"Retry-After": header}, b"")
    client = _client(stub)
    try:
        with pytest.raises(BackendCallError) as models:
            await client.models()
        with pytest.raises(BackendCallError) as streamed:
            async with client.stream("/chat/completions", {"messages": []}):
                pass
    finally:
        await client.close()
    for error in (models.value, streamed.value):
        assert (error.reason, error.status) == ("busy", 429)
        assert error.retry_after_s is not None
        assert 1 <= error.retry_after_s <= 60


async def test_a_near_retry_after_date_is_obeyed_as_it_says(stub: StubServer) -> None:
    stub.reply = (503, {"Retry-After": formatdate(time.time() + 20, usegmt=True)}, b"")
    client = _client(stub)
    try:
        with pytest.raises(BackendCallError) as error:
            await client.models()
    finally:
        await client.close()
    assert error.value.retry_after_s is not None
    assert 18 <= error.value.retry_after_s <= 21


def _stream(*chunks: object) -> bytes:
    lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return "".join([*lines, "data: [DONE]\n\n"]).encode()


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": [{"index": "zero", "delta": {"content": "x"}}]},
        {"choices": [{"index": 0.5, "delta": {"content": "x"}}]},
        {"choices": [{"index": None, "delta": {"content": "x"}}]},
        {"choices": [{"index": True, "delta": {"content": "x"}}]},
        {"choices": "abc"},
        {"choices": 7},
        {"choices": {"index": 0}},
        {"choices": [7]},
        {"choices": [], "usage": {"prompt_tokens": "many", "completion_tokens": 1}},
    ],
    ids=[
        "index-text", "index-float", "index-null", "index-bool", "choices-text",
        "choices-number", "choices-object", "choice-number", "usage-text",
    ],
)  # fmt: skip
async def test_a_malformed_stream_is_a_bad_response_not_a_crash(
    stub: StubServer, chunk: dict[str, object]
) -> None:
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    stub.reply = (200, {"Content-Type": "text/event-stream"}, _stream(chunk, finish))
    client = _client(stub)
    events: list[RowEvent] = []
    try:
        with pytest.raises(BackendCallError) as error:
            await stream_rows(client, "/chat/completions", {}, [Row((0, 0, 0))], events.append)
    finally:
        await client.close()
    assert (error.value.reason, error.value.counts) == ("bad_response", True)


async def test_a_well_formed_stream_fills_its_rows(stub: StubServer) -> None:
    chunks = [
        {"choices": [{"index": 1, "delta": {"content": "B"}}]},
        {"choices": [{"index": 0, "text": "A"}]},
        {
            "choices": [
                {"index": 0, "finish_reason": "length"},
                {"index": 1, "finish_reason": "stop"},
            ]
        },
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    ]
    stub.reply = (200, {"Content-Type": "text/event-stream"}, _stream(*chunks))
    client = _client(stub)
    rows = [Row((0, 0, 0)), Row((0, 0, 1))]
    try:
        usage = await stream_rows(client, "/chat/completions", {}, rows, lambda _: None)
    finally:
        await client.close()
    assert [(row.text, row.finish) for row in rows] == [("A", "length"), ("B", "stop")]
    assert usage == {"prompt_tokens": 3, "completion_tokens": 2}
