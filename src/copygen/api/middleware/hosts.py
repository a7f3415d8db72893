"""The Host names copygen answers to (COPYGEN_ALLOWED_HOSTS).

Without keys, on a loopback bind, every caller is admin: a web page the user of that machine
visits can make its own name resolve to 127.0.0.1 (DNS rebinding) and call the API as "the
same site": clear the cache, read the webhook secret and the feedback export. Its requests
still carry its own name in ``Host``, so only the names configured (by default the loopback
names, on any port) are served. Like Starlette's ``TrustedHostMiddleware``, which answers in
plain text and cannot read a bracketed IPv6 host; this one answers in the one error shape and
never echoes the host.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from copygen.api.responses import error_response
from copygen.api.state import header
from copygen.hostnames import HostRule, split_host

#: Probes and scrapes name the pod's address in Host, whatever names clients use; these
#: answers hold nothing a key would protect (docs/security.md).
UNCHECKED_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})


class AllowedHostsMiddleware:
    """400 ``invalid_host`` for a request whose ``Host`` names no allowed host (probes and
    metrics excepted)."""

    def __init__(self, app: ASGIApp, rules: tuple[HostRule, ...]) -> None:
        self.app = app
        self._rules = rules
        self._any = any(rule.name == "*" and rule.port is None for rule in rules)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self._any
            or scope["path"] in UNCHECKED_PATHS
            or self.allows(header(scope, b"host"))
        ):
            await self.app(scope, receive, send)
            return
        message = "the Host header names no host this service answers to (COPYGEN_ALLOWED_HOSTS)"
        await error_response(400, "invalid_host", message)(scope, receive, send)

    def allows(self, raw: bytes | None) -> bool:
        parsed = split_host(raw.decode("latin-1")) if raw else None
        return parsed is not None and any(rule.allows(*parsed) for rule in self._rules)
