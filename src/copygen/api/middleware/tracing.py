"""The request's span: one SERVER span per HTTP request, continuing an incoming W3C
``traceparent``, and its trace id on every log line written while the request runs.

Installed only when tracing is on (observability/tracing.py), just inside the request id, so
the request line (request_log.py) and everything below run inside the span."""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copygen.api.state import REQUEST_ID, log_fields, state
from copygen.observability import tracing


class TracingMiddleware:
    """A span named ``<method> <route template>`` (the method alone when no route matched,
    and for the fast path's answers), with the status, the route, the request id and the
    figures of the request's log line (cached, cache tier, rounds, tokens, job ids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = scope["method"]
        with tracing.server_span(method, scope["path"], scope["headers"]) as traced:
            traced.set(request_id=state(scope).get(REQUEST_ID))
            # Log lines name the trace only when it is kept (sampled in).
            logged = {"trace_id": traced.trace_id} if traced.recording else {}
            try:
                with structlog.contextvars.bound_contextvars(**logged):
                    await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    traced.span.update_name(f"{method} {route}")
                    traced.set_attribute("http.route", route)
                traced.set_attribute("http.response.status_code", status)
                traced.set(**log_fields(scope))  # the request line's figures: cache tier, tokens
                if status >= 500:
                    traced.failed(str(status))
