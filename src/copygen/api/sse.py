"""Server-Sent Events: one place that turns an async stream of payloads into a response."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse

from copygen.errors import CopygenError

log = logging.getLogger("copygen.api")

PING_S = 15
SEND_TIMEOUT_S = 30


def sse_response(events: AsyncIterator[tuple[str | None, Any]]) -> EventSourceResponse:
    """``events`` yields (event name or None, JSON-able payload or the literal "[DONE]").

    An error after the stream has started cannot change the status code any more: it is
    sent as a final ``error`` event with the usual error body.
    """

    async def body() -> AsyncIterator[dict[str, str]]:
        try:
            async for name, payload in events:
                data = payload if isinstance(payload, str) else json.dumps(payload)
                yield {"event": name, "data": data} if name else {"data": data}
        except CopygenError as exc:
            error = {"error": {"type": exc.type, "message": exc.message, "field": exc.field}}
            yield {"event": "error", "data": json.dumps(error)}

    return EventSourceResponse(
        body(), ping=PING_S, send_timeout=SEND_TIMEOUT_S, headers={"Cache-Control": "no-store"}
    )
