"""The backend client against a real HTTP server on a loopback port that answers what a test
tells it: what copygen does with a backend's hostile or broken answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from copygen.backends.client import BackendCallError, OpenAIClient


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
