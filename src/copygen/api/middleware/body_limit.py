"""The request body cap: 413 for bodies over COPYGEN_MAX_BODY_BYTES, read ahead of the app,
bounded, and handed on as the same messages (and, whole, to inner layers via scope state)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.api.responses import error_response
from copygen.api.state import BODY, header, state


@dataclass(slots=True)
class BufferedBody:
    messages: list[Message]
    too_large: bool = False
    complete: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages)


async def read_body(receive: Receive, limit: int) -> BufferedBody:
    """Read until the body ends, passes ``limit`` bytes (``too_large``) or the client leaves
    (neither flag set); never more than ``limit`` plus one message is held."""
    read = BufferedBody([])
    size = 0
    while True:
        message = await receive()
        read.messages.append(message)
        if message["type"] != "http.request":
            return read
        size += len(message.get("body", b""))
        if size > limit:
            read.too_large = True
            return read
        if not message.get("more_body", False):
            read.complete = True
            return read


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives ``messages`` first, then whatever the client sends next."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: at once from Content-Length, else while reading (a
    chunked body is counted as it arrives and never held beyond the cap)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max):
            await self._too_large(scope, receive, send)
            return
        read = await read_body(receive, self._max)
        if read.too_large:
            await self._too_large(scope, receive, send)
            return
        if read.complete:  # inner layers (the fast path) need not read it again
            state(scope)[BODY] = read.body
        await self.app(scope, replay(read.messages, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self._max} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
