"""What copygen keeps in a request's ASGI ``scope["state"]``: every key, who writes it and who
reads it, with typed getters; and the one way to read a request header."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.types import Scope

from copygen.auth import ANONYMOUS

#: Written by middleware/request_id; read by request_log.
REQUEST_ID = "request_id"
#: Written by middleware/auth (``anonymous`` without keys); read by rate_limit, fastpath, routes.
TENANT = "tenant"
#: Written by middleware/auth: ``plain`` or ``admin``.
KEY_SCOPE = "scope"
#: Written by middleware/body_limit when it buffered the whole body; read by the fast path.
BODY = "buffered_body"
#: Per-request figures (cache tier, tokens, job ids) written by routes and the fast path; read
#: by request_log (the log line). The token budget is charged where tokens are made
#: (copygen/budget.py), not from these.
LOG_FIELDS = "log_fields"
#: The brief /v1/copy validated, for the fast path to remember.
COPY_BRIEF = "copy_brief"


def state(scope: Scope) -> MutableMapping[str, Any]:
    return scope.setdefault("state", {})  # type: ignore[no-any-return]


def tenant(scope: Scope) -> str:
    return str(state(scope).get(TENANT, ANONYMOUS))


def buffered_body(scope: Scope) -> bytes | None:
    body = state(scope).get(BODY)
    return body if isinstance(body, bytes) else None


def log_fields(scope: Scope) -> dict[str, Any]:
    fields = state(scope).get(LOG_FIELDS)
    return fields if isinstance(fields, dict) else {}


def set_log_fields(scope: Scope, fields: dict[str, Any]) -> None:
    state(scope)[LOG_FIELDS] = fields


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
