"""Signed webhook deliveries: where they may go (no loopback, link-local or private address
unless allowed: a webhook must not reach into the service's own network), how they are signed
(HMAC-SHA256 of timestamp and body with the tenant's secret), and one delivery attempt.

An attempt resolves the host once, checks every address, and connects to the checked one (the
name stays in the Host header and in TLS's SNI and certificate check): a name that answers a
public address to the check and a private one to the connection (DNS rebinding) cannot steer
the POST. One timeout bounds the whole attempt, and the receiver's body is never read."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from copygen.errors import InvalidRequest
from copygen.observability import tracing

SIGNATURE_HEADER = "X-Copygen-Signature"
#: The same on every attempt of one delivery: receivers dedupe on it.
DELIVERY_HEADER = "X-Copygen-Delivery"

#: ``resolve(host, port)``: the host's addresses (IP strings), as the connection would use them.
Resolver = Callable[[str, int], Awaitable[list[str]]]


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
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise InvalidRequest("webhook_url must be an http(s) URL", field="webhook_url")
    return url


async def resolve_host(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host`` (in a thread: getaddrinfo blocks)."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL and the checked addresses its attempt may connect to, in order."""

    url: httpx.URL
    addresses: tuple[str, ...]


async def check_target(url: str, allow_private: bool, resolve: Resolver = resolve_host) -> Target:
    """Resolve the host once and refuse it when any address is loopback, link-local, private,
    reserved or multicast (SSRF), unless ``allow_private``. Checked when the job is submitted
    and at each attempt, which connects to the address returned here and nowhere else."""
    check_url(url)
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
        addresses = await resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    except (OSError, UnicodeError, httpx.InvalidURL) as exc:  # UnicodeError: a name IDNA refuses
        raise InvalidRequest("webhook_url's host does not resolve", field="webhook_url") from exc
    if not addresses:
        raise InvalidRequest("webhook_url's host does not resolve", field="webhook_url")
    if not allow_private:
        for found in addresses:
            address = ipaddress.ip_address(found)
            if not address.is_global or address.is_multicast:
                raise InvalidRequest(
                    "webhook_url points to a private, loopback or link-local address",
                    field="webhook_url",
                )
    return Target(parsed, tuple(dict.fromkeys(addresses)))


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt met. ``status_code`` and ``error`` are for the server's log only: shown
    to the tenant, they would map the network behind the service (a port scanner's oracle)."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def refused(self) -> bool:
        """The target was refused (its address is private): retrying will not help."""
        return self.error == "refused_target"


async def deliver(
    url: str,
    secret: str,
    body: bytes,
    *,
    delivery_id: str,
    attempt: int,
    timeout_s: float,
    allow_private: bool,
    resolve: Resolver = resolve_host,
) -> Attempt:
    """One POST of ``body``, resolution to last byte within ``timeout_s``; redirects are not
    followed (they could lead anywhere) and the response's body is never read."""
    with tracing.span("webhook.deliver", kind="client", attempt=attempt) as traced:
        try:
            async with asyncio.timeout(timeout_s):
                target = await check_target(url, allow_private, resolve)
                outcome = await _post(target, secret, body, delivery_id, attempt, timeout_s)
        except InvalidRequest:
            outcome = Attempt(None, "refused_target")
        except TimeoutError:
            outcome = Attempt(None, "timeout")
        traced.set(status_code=outcome.status_code, error=outcome.error)
    return outcome


async def _post(
    target: Target, secret: str, body: bytes, delivery_id: str, attempt: int, timeout_s: float
) -> Attempt:
    timestamp = int(time.time())
    headers = {
        "Host": target.url.netloc.decode("ascii"),
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,
        "X-Copygen-Delivery-Attempt": str(attempt),
        "User-Agent": "copygen-webhook",
    }
    # httpcore takes the TLS server name (SNI and the certificate's name) from this extension.
    extensions = {"sni_hostname": target.url.raw_host.decode("ascii")}
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        for address in target.addresses:  # the next only when one cannot be connected to
            pinned = target.url.copy_with(host=address)
            try:
                async with client.stream(
                    "POST", pinned, content=body, headers=headers, extensions=extensions
                ) as response:
                    # Leaving without reading closes the connection: the body, however large
                    # or slow, never reaches memory.
                    return Attempt(response.status_code, None)
            except httpx.ConnectError:
                continue
            except httpx.HTTPError as exc:
                return Attempt(None, type(exc).__name__)
    return Attempt(None, "ConnectError")
