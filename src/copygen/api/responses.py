"""Every error in one body shape, {"error": {"type", "message", "field"}}, never echoing input:
the domain error → status map, the exception handlers, and the error answers each route
documents in OpenAPI."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from copygen.api.schemas import ErrorBody
from copygen.errors import (
    BackendOverloaded,
    BackendUnavailable,
    CacheUnavailable,
    CircuitOpen,
    CopygenError,
    DeadlineExceeded,
    Draining,
    GenerationFailed,
    InvalidRequest,
    LimitExceeded,
    MemoryPressure,
    ModelNotFound,
    ModelUnavailable,
    NotFound,
    NotReady,
    PreconditionFailed,
    QueueFull,
    RateLimited,
    StoreUnavailable,
)

log = logging.getLogger("copygen.api")

#: Answers any route may give (from the middleware: auth, limits, body cap, draining, faults),
#: documented so clients and schema-driven tools know them.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "malformed JSON"),
        (401, "missing or invalid API key"),
        (403, "the route needs an admin key"),
        (413, "request body over COPYGEN_MAX_BODY_BYTES"),
        (422, "validation error"),
        (429, "queue full or rate limit exceeded (Retry-After)"),
        (431, "Authorization header too large"),
        (503, "not ready, draining, breaker open, memory pressure or generation failed"),
        (504, "deadline exceeded"),
    )
}
#: What the generating routes answer besides 200 (404: a brief naming an unknown brand).
GENERATION_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 404, 422, 502, 503, 504)
}
#: Streaming routes also answer 200 as text/event-stream.
STREAM_OK: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}}}}

#: Domain error → (HTTP status, Retry-After seconds or None).
STATUS: dict[type[CopygenError], tuple[int, int | None]] = {
    NotReady: (503, 5),
    ModelUnavailable: (503, 30),
    GenerationFailed: (503, 5),
    DeadlineExceeded: (504, None),
    QueueFull: (429, 1),
    RateLimited: (429, 60),
    ModelNotFound: (404, None),
    InvalidRequest: (422, None),
    CircuitOpen: (503, 5),
    MemoryPressure: (503, 5),
    Draining: (503, 5),
    CacheUnavailable: (503, 5),
    BackendUnavailable: (502, 5),
    BackendOverloaded: (503, 5),
    NotFound: (404, None),
    PreconditionFailed: (412, None),
    StoreUnavailable: (503, 5),
    LimitExceeded: (429, 60),
}

HTTP_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_response(
    status: int,
    type_: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"type": type_, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


def _status_for(exc: CopygenError) -> tuple[int, int | None]:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500, None


async def _copygen_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CopygenError)
    status, retry_after = _status_for(exc)
    if exc.retry_after_s is not None:
        retry_after = exc.retry_after_s
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.rejected(exc.type)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return error_response(status, exc.type, exc.message, exc.field, headers)


def _field(loc: tuple[Any, ...]) -> str | None:
    """The location as far as the schema names it. A request parameter's name is the route's
    own (undeclared ones are never validated); in a body, the first part the schema does not
    know (an unknown field's name, a dict key: the caller's text, markup say) ends the path."""
    if loc and loc[0] in ("query", "path", "header", "cookie"):
        return str(loc[1]) if len(loc) > 1 else None
    known = _schema_names()
    parts: list[str] = []
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if not isinstance(part, int) and part not in known:
            break
        parts.append(str(part))
    return ".".join(parts) or None


def _schema_names() -> set[str]:
    """Field names and aliases of copygen's models. Walked on each validation error (0.13 ms
    for the ~100 models), so a model defined later is never missing from a stale cache."""
    names: set[str] = set()
    pending: list[type[BaseModel]] = [BaseModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model.__module__.startswith("copygen."):
            for name, info in model.model_fields.items():
                names.update((name, info.alias) if info.alias else (name,))
    return names


def validation_detail(errors: Sequence[Any]) -> tuple[str, str | None]:
    """(message, field) for a list of pydantic errors, without any of the input."""
    first = errors[0] if errors else {"msg": "invalid request", "loc": ()}
    # Only pydantic's message and the location: never "input" or "ctx", which hold user data.
    message = str(first.get("msg", "invalid value"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error(s))"
    return message, _field(tuple(first.get("loc", ())))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    message, field = validation_detail(errors)
    return error_response(422, "validation_error", message, field)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    type_ = HTTP_TYPES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else type_.replace("_", " ")
    return error_response(exc.status_code, type_, message, headers=exc.headers)


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CopygenError, _copygen_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
