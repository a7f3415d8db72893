"""API keys, per-client rate limits, the request body cap and the client address.

Keys are kept as SHA-256 digests and compared in constant time against every configured key
(no early exit), so timing says nothing about which key, or how much of one, matched. Each key
names a tenant (used in cache keys and limits) and a scope: ``plain`` or ``admin``. Without
configured keys the service is anonymous (local use); config refuses a public bind then.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from copygen.api.body import BODY_STATE, read_body, replay
from copygen.api.errors import error_response
from copygen.apikeys import KeyRing
from copygen.engine.engine import ANONYMOUS

MAX_AUTH_HEADER_BYTES = 4096
#: Paths anyone may call: probes, metrics (keep them inside the cluster) and the docs.
OPEN_PATHS = ("/health", "/metrics", "/docs", "/redoc", "/openapi.json")
#: (method, path) that need an admin key.
ADMIN_ROUTES = {("DELETE", "/v1/cache")}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class AuthMiddleware:
    """Resolve the caller into ``scope["state"]``: ``tenant`` and ``scope``. Bearer tokens
    (``Authorization: Bearer <key>``) or ``X-API-Key``."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self._keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if not self._keys or scope["path"].startswith(OPEN_PATHS):
            state["tenant"], state["scope"] = ANONYMOUS, "admin" if not self._keys else "plain"
            await self.app(scope, receive, send)
            return
        raw = _header(scope, b"authorization")
        token = None
        if raw is not None:
            if len(raw) > MAX_AUTH_HEADER_BYTES:
                await _refuse(scope, receive, send, 431, "header_too_large",
                              "the Authorization header is too large")  # fmt: skip
                return
            scheme, _, value = raw.decode("latin-1").partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        else:
            api_key = _header(scope, b"x-api-key")
            if api_key is not None and len(api_key) <= MAX_AUTH_HEADER_BYTES:
                token = api_key.decode("latin-1").strip()
        key = self._keys.find(token) if token else None
        if key is None:
            message = (
                "an API key is required: Authorization: Bearer <key>"
                if raw is None and token is None
                else "the API key is missing, malformed or not valid"
            )
            await _refuse(scope, receive, send, 401, "unauthorized", message,
                          {"WWW-Authenticate": 'Bearer realm="copygen"'})  # fmt: skip
            return
        if (scope["method"], scope["path"]) in ADMIN_ROUTES and key.scope != "admin":
            await _refuse(scope, receive, send, 403, "forbidden", "this route needs an admin key")
            return
        state["tenant"], state["scope"] = key.tenant, key.scope
        await self.app(scope, receive, send)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    type_: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> None:
    await error_response(status, type_, message, headers=headers)(scope, receive, send)


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
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max):
            await self._too_large(scope, receive, send)
            return
        read = await read_body(receive, self._max)
        if read.too_large:
            await self._too_large(scope, receive, send)
            return
        if read.complete:  # inner layers (the fast path) need not read it again
            scope.setdefault("state", {})[BODY_STATE] = read.body
        await self.app(scope, replay(read.messages, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self._max} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma list of addresses or CIDRs (COPYGEN_TRUSTED_PROXIES)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())  # fmt: skip


def client_ip(scope: Scope, trusted: tuple[Network, ...]) -> str:
    """The peer address, or, when the peer is a trusted proxy, the right-most address in
    X-Forwarded-For that is not itself a trusted proxy. Headers from anyone else are ignored,
    so a client cannot pick its own identity by sending X-Forwarded-For."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if not trusted or not _trusted(peer, trusted):
        return str(peer)
    forwarded = _header(scope, b"x-forwarded-for")
    if not forwarded:
        return str(peer)
    hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:64]
    return str(peer)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
