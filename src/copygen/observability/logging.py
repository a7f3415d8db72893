"""Structured logs: JSON lines on stdout (one per request, plus engine events), or a readable
console format on a terminal. Never prompts, outputs or keys: request lines carry ids, routes,
statuses, timings and counts only, and engine events carry no request content."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Collection, MutableMapping
from typing import Any, Literal

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.domain import CopyResult

LogFormat = Literal["auto", "json", "console"]

#: Logged status of a request whose client disconnected first (nginx's convention).
CLIENT_CLOSED = 499

#: Where routes leave per-request figures for the request log line (in scope["state"]).
LOG_FIELDS = "log_fields"

access = structlog.get_logger()  # lazy: configure_logging may run after import


def configure_logging(level: str, fmt: LogFormat = "auto") -> None:
    """One format on stdout for two paths: structlog's own loggers (the request line) write
    directly, which costs a fraction of going through stdlib logging on every request; stdlib
    logging (uvicorn, copygen's engine, libraries) is rendered by the same processors."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    stamp = _utc_stamp
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            renderer,
        ],
        # Below-level events are dropped before any processing.
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.WriteLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            stamp,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # Our request line replaces uvicorn's access log (which would also log query strings).
    logging.getLogger("uvicorn.access").disabled = True


def copy_log_fields(result: CopyResult) -> dict[str, Any]:
    """What a /v1/copy request line says about its result: figures, never text."""
    return {
        "cached": result.cached,
        "cache_tier": result.cache_tier,
        "variants": len(result.variants),
        "rounds": result.rounds,
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "jobs": list(result.jobs),
    }


_second: list[Any] = [None, ""]


def _utc_stamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """ISO-8601 UTC with microseconds, like structlog's TimeStamper(fmt="iso", utc=True), at a
    tenth of its cost: the date and time of day are formatted once per second."""
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[0], _second[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    event["timestamp"] = f"{_second[1]}.{int((now - second) * 1_000_000):06d}Z"
    return event


#: ``(route template or None, method, status, seconds)`` of every finished request.
RequestHook = Callable[[str | None, str, int, float], None]


class RequestLogMiddleware:
    """One log line per HTTP request: id, method, route template, status (499 when the client
    went away), latency and whatever figures the route left in ``scope["state"][LOG_FIELDS]``
    (cache tier, tokens, job ids); ``on_done`` hears the same request (the HTTP metrics).
    Binds the request id for every log line written while the request runs.

    copygen's routes have no path parameters, so the template is the path when ``routes()``
    knows it and None otherwise (unbounded paths never become metric labels).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Callable[[], Collection[str]] = frozenset,
        on_done: RequestHook | None = None,
    ) -> None:
        self.app = app
        self._routes = routes
        self._known: frozenset[str] | None = None
        self._on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        state: MutableMapping[str, Any] = scope.setdefault("state", {})

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        request_id = state.get("request_id")
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_status)
            except asyncio.CancelledError:
                status = CLIENT_CLOSED  # the client went away; the request was dropped
                raise
            finally:
                if self._known is None:
                    self._known = frozenset(self._routes())
                path = scope["path"]
                route = path if path in self._known else None
                seconds = time.perf_counter() - started
                access.info(
                    "request",
                    logger="copygen.access",
                    request_id=request_id,
                    method=scope["method"],
                    route=route,
                    status=status,
                    latency_ms=round(seconds * 1000, 2),
                    **(state.get(LOG_FIELDS) or {}),
                )
                if self._on_done is not None:
                    self._on_done(route, scope["method"], status, seconds)
