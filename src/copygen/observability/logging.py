"""Structured logs: JSON lines on stdout (one per request, plus engine events), or a readable
console format on a terminal. Never prompts, outputs or keys: request lines carry ids, routes,
statuses, timings and counts only, and engine events carry no request content. The request
line itself is written by api/middleware/request_log.py."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from copygen.domain import CopyResult

LogFormat = Literal["auto", "json", "console"]
#: Libraries whose INFO and DEBUG lines hold URLs or headers of outgoing calls.
QUIET_LIBRARIES = ("httpx", "httpcore", "hpack", "h2")


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
    # httpx logs every call's full URL at INFO, httpcore and the HTTP/2 libraries connections
    # and headers at DEBUG: webhook URLs carry their receivers' tokens in paths and queries,
    # and backend calls carry its key. Their warnings and errors still come through.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


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
