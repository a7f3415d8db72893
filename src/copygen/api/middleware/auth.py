"""Who is calling: an API key (Bearer token or X-API-Key) resolved into a tenant and a scope.

Keys are kept as SHA-256 digests and compared in constant time against every configured key
(no early exit), so timing says nothing about which key, or how much of one, matched. Each key
names a tenant (used in cache keys and limits) and a scope: ``plain`` or ``admin``. Without
configured keys the service is anonymous (local use); config refuses a public bind then.
Admin routes also refuse a request that a page of another site sent (its ``Origin`` is neither
this service nor a COPYGEN_CORS_ORIGINS entry), keys or not: without keys every caller is
admin.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from copygen.api.responses import error_response
from copygen.api.state import KEY_SCOPE, TENANT, header, state
from copygen.auth import ANONYMOUS, KeyRing
from copygen.hostnames import same_origin

MAX_AUTH_HEADER_BYTES = 4096
#: Paths anyone may call: probes, metrics (keep them inside the cluster), the docs and the
#: playground's static files (the page itself is "/"; its API calls carry the key).
OPEN_PATHS = ("/health", "/metrics", "/docs", "/redoc", "/openapi.json", "/ui/")


def is_open(path: str) -> bool:
    return path == "/" or path.startswith(OPEN_PATHS)


#: (method, path) that need an admin key.
ADMIN_ROUTES = {("DELETE", "/v1/cache"), ("POST", "/v1/admin/profile")}


class AuthMiddleware:
    """Resolve the caller into ``scope["state"]``: ``tenant`` and ``scope``. Bearer tokens
    (``Authorization: Bearer <key>``) or ``X-API-Key``."""

    def __init__(self, app: ASGIApp, keys: KeyRing, cors_origins: Sequence[str] = ()) -> None:
        self.app = app
        self._keys = keys
        self._origins = frozenset(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (scope["method"], scope["path"]) in ADMIN_ROUTES and self._foreign(scope):
            await _refuse(scope, receive, send, 403, "forbidden",
                          "admin routes refuse requests sent by another site's pages")  # fmt: skip
            return
        caller = state(scope)
        if not self._keys or is_open(scope["path"]):
            caller[TENANT], caller[KEY_SCOPE] = ANONYMOUS, "admin" if not self._keys else "plain"
            await self.app(scope, receive, send)
            return
        raw = header(scope, b"authorization")
        token = None
        if raw is not None:
            if len(raw) > MAX_AUTH_HEADER_BYTES:
                await _refuse(scope, receive, send, 431, "header_too_large",
                              "the Authorization header is too large")  # fmt: skip
                return
            scheme, _, value = raw.decode("latin-1").partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        else:
            api_key = header(scope, b"x-api-key")
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
        caller[TENANT], caller[KEY_SCOPE] = key.tenant, key.scope
        await self.app(scope, receive, send)

    def _foreign(self, scope: Scope) -> bool:
        """A browser sent this request from a page that is neither this service nor a CORS
        origin (other clients send no ``Origin``)."""
        origin = header(scope, b"origin")
        if origin is None:
            return False
        text = origin.decode("latin-1")
        own = header(scope, b"host") or b""
        return text not in self._origins and not same_origin(text, own.decode("latin-1"))


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
