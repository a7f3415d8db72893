"""Signed webhook deliveries: where they may go (no loopback, link-local or private address
unless allowed: a webhook must not reach into the service's own network), how they are signed
(HMAC-SHA256 of timestamp and body with the tenant's secret), and one delivery attempt."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from copygen.errors import InvalidRequest

SIGNATURE_HEADER = "X-Copygen-Signature"


def tenant_secret(master: str, tenant: str) -> str:
    """The tenant's signing secret, derived from the service's: tenants never share one."""
    return hmac.new(master.encode(), f"webhook:{tenant}".encode(), hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the receiver recomputes it
    and refuses a timestamp older than it tolerates (replays)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def check_url(url: str) -> str:
    """An http(s) URL with a host, or InvalidRequest (never echoing it)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise InvalidRequest("webhook_url must be an http(s) URL", field="webhook_url")
    return url


async def check_target(url: str, allow_private: bool) -> None:
    """Refuse a webhook whose host resolves to a loopback, link-local, private, reserved or
    multicast address (SSRF), unless ``allow_private``. Checked when the job is submitted and
    again before each delivery (a name can be pointed elsewhere in between)."""
    host = urlsplit(check_url(url)).hostname or ""
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, None)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
        raise InvalidRequest("webhook_url's host does not resolve", field="webhook_url") from exc
    if allow_private:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise InvalidRequest(
                "webhook_url points to a private, loopback or link-local address",
                field="webhook_url",
            )


@dataclass(frozen=True, slots=True)
class Attempt:
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def deliver(url: str, secret: str, body: bytes, timeout_s: float, attempt: int) -> Attempt:
    """One POST of ``body``; redirects are not followed (they could lead anywhere)."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        "X-Copygen-Delivery-Attempt": str(attempt),
        "User-Agent": "copygen-webhook",
    }
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return Attempt(None, type(exc).__name__)
    return Attempt(response.status_code, None)
