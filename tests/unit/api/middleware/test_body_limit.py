"""The body cap at the ASGI level: what the inner app receives (the same messages, and the
whole body in scope state), what is read of a body over the cap (at most one message past
it, nothing when Content-Length says so), and a client that leaves mid-body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from copygen.api.middleware.body_limit import BodyLimitMiddleware
from copygen.api.state import BODY

CAP = 10


class Client:
    """Sends ``messages`` one per receive() (then waits forever) and collects the answer."""

    def __init__(self, *messages: Message) -> None:
        self.pending = list(messages)
        self.received = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.received += 1
        return self.pending.pop(0) if self.pending else {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])


class Inner:
    """Reads the whole body as an app would; remembers it and the buffered copy in state."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.buffered: list[Any] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.buffered.append(scope.get("state", {}).get(BODY))
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _scope(method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": method, "path": "/v1/copy", "headers": headers or []}


def _chunk(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_within_the_cap_reaches_the_app_whole_and_buffered() -> None:
    inner, client = Inner(), Client(_chunk(b"12345"), _chunk(b"67890", more=False))
    await BodyLimitMiddleware(inner, CAP)(_scope(), client.receive, client.send)
    assert client.status == 200
    assert inner.bodies == [b"1234567890"]
    assert inner.buffered == [b"1234567890"]  # the fast path need not read it again


async def test_a_chunked_body_over_the_cap_is_413_read_no_further() -> None:
    inner = Inner()
    client = Client(_chunk(b"123456"), _chunk(b"789012"), _chunk(b"never read", more=False))
    await BodyLimitMiddleware(inner, CAP)(_scope(), client.receive, client.send)
    assert client.status == 413
    assert (b"connection", b"close") in client.sent[0]["headers"]
    assert json.loads(client.sent[1]["body"])["error"]["type"] == "payload_too_large"
    assert client.received == 2  # the cap plus one message, never the rest
    assert inner.bodies == []


@pytest.mark.parametrize("declared", [b"11", b"1e3", b"-1"])
async def test_a_declared_length_over_the_cap_or_not_a_number_is_413_unread(
    declared: bytes,
) -> None:
    inner, client = Inner(), Client(_chunk(b"x", more=False))
    scope = _scope(headers=[(b"content-length", declared)])
    await BodyLimitMiddleware(inner, CAP)(scope, client.receive, client.send)
    assert client.status == 413
    assert client.received == 0
    assert inner.bodies == []


async def test_a_client_that_leaves_mid_body_reaches_the_app_without_a_buffered_body() -> None:
    inner, client = Inner(), Client(_chunk(b"123"))  # then http.disconnect
    await BodyLimitMiddleware(inner, CAP)(_scope(), client.receive, client.send)
    assert inner.bodies == [b"123"]
    assert inner.buffered == [None]


async def test_requests_without_a_body_pass_untouched() -> None:
    inner, client = Inner(), Client(_chunk(b"x" * 50, more=False))
    await BodyLimitMiddleware(inner, CAP)(_scope("GET"), client.receive, client.send)
    assert client.status == 200
    assert inner.bodies == [b"x" * 50]  # GET is not capped or buffered here
    assert inner.buffered == [None]
