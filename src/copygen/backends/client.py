"""One pooled HTTP client for an OpenAI-compatible server: its model list, and streamed
completions as parsed chunks. Every failure becomes a BackendCallError that says whether it
should count against the backend (its breaker) and how long the backend asked us to wait."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from copygen.observability import tracing

#: Response statuses that say "busy, come back later" rather than "broken".
BUSY = (429, 503)
#: Retry-After when a busy backend does not say.
DEFAULT_RETRY_AFTER_S = 1
#: The longest Retry-After obeyed. Within it the backend is not called at all, so a backend
#: (or a proxy in front of it) answering 99,999,999 s or a date in 2099 would take the route
#: down for years; real overloads pass in seconds, and a backend that stays down is the
#: breaker's to handle. Clients are told the same capped figure.
MAX_RETRY_AFTER_S = 60


@dataclass(eq=False)
class BackendCallError(Exception):
    """A failed call. ``reason`` labels the metrics (connect, timeout, status_5xx, …);
    ``counts`` feeds the breaker; ``detail`` is the server's own message, kept off every
    answer and log (it may quote the prompt)."""

    reason: str
    counts: bool
    status: int | None = None
    retry_after_s: int | None = None
    detail: str = ""

    def __str__(self) -> str:
        return f"backend {self.reason}" + (f" ({self.status})" if self.status else "")


def retry_after(headers: httpx.Headers) -> int:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), 1 to
    MAX_RETRY_AFTER_S."""
    value = headers.get("retry-after", "").strip()
    seconds: float | None = None
    if value.isascii() and value.isdigit():
        # int() refuses over 4,300 digits; anything past the cap's digits is over the cap.
        seconds = int(value) if len(value) <= 9 else MAX_RETRY_AFTER_S
    else:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            from email.utils import parsedate_to_datetime

            seconds = parsedate_to_datetime(value).timestamp() - time.time()
    if seconds is None:
        return DEFAULT_RETRY_AFTER_S
    return min(MAX_RETRY_AFTER_S, max(1, math.ceil(seconds)))


class OpenAIClient:
    """``base_url`` is an OpenAI base such as http://vllm:8000/v1."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout_s: float,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            # Connect errors are retried once by the transport: nothing was sent yet.
            transport=transport
            or httpx.AsyncHTTPTransport(
                http2=True,
                retries=1,
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
            ),
            # read: the longest silence between two chunks; the request deadline bounds the rest.
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        )
        parts = urlsplit(self.base_url)
        self._span_attributes: dict[str, tracing.Value] = {
            "http.request.method": "POST",
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
        }

    @property
    def host(self) -> str:
        """Where the backend is, without credentials or path (for /health)."""
        parts = urlsplit(self.base_url)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else ""

    async def close(self) -> None:
        await self._http.aclose()

    async def models(self) -> list[str]:
        """The ids of GET /models, in the backend's order."""
        try:
            response = await self._http.get("/models")
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        if response.status_code != 200:
            raise _status_error(response)
        try:
            return [str(card["id"]) for card in response.json()["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendCallError("bad_response", counts=True) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, body: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """POST ``body`` with ``stream: true`` and yield its chunks. Leaving the block closes
        the connection, which tells the backend to stop generating. The call is a span whose
        ``traceparent`` goes with it, so a server that traces (vLLM) continues the trace."""
        with tracing.span(f"POST {path}", {"url.path": path, **self._span_attributes},
                          kind="client", rows=body.get("n", 1)) as traced:  # fmt: skip
            try:
                headers = tracing.inject({})
                async with self._http.stream("POST", path, json=body, headers=headers) as response:
                    traced.set_attribute("http.response.status_code", response.status_code)
                    if response.status_code != 200:
                        await response.aread()
                        raise _status_error(response)
                    yield _chunks(response)
            except httpx.HTTPError as exc:
                raise _transport_error(exc) from exc


async def _chunks(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise BackendCallError("bad_response", counts=True) from exc
        if not isinstance(chunk, dict):
            raise BackendCallError("bad_response", counts=True)
        if "error" in chunk:
            raise BackendCallError("stream_error", counts=True)
        yield chunk
    raise BackendCallError("stream_ended", counts=True)


def _status_error(response: httpx.Response) -> BackendCallError:
    status = response.status_code
    if status in BUSY:
        return BackendCallError(
            "busy", counts=False, status=status, retry_after_s=retry_after(response.headers)
        )
    detail = ""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        error = response.json().get("error")
        detail = str(error.get("message", "") if isinstance(error, dict) else error)[:200]
    reason = "status_5xx" if status >= 500 else "status_4xx"
    return BackendCallError(reason, counts=status >= 500, status=status, detail=detail)


def _transport_error(exc: httpx.HTTPError) -> BackendCallError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return BackendCallError("connect", counts=True)
    if isinstance(exc, httpx.TimeoutException):
        return BackendCallError("timeout", counts=True)
    return BackendCallError("broken", counts=True)
