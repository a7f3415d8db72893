"""Reading a request body ahead of the app, bounded, and handing the same messages on."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Message, Receive

#: Where a layer that buffered the whole body leaves it (in scope["state"]) for inner layers.
BODY_STATE = "buffered_body"


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
