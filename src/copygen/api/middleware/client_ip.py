"""The client address: the peer, or behind trusted proxies the right-most untrusted hop."""

from __future__ import annotations

import ipaddress

from starlette.types import Scope

from copygen.api.state import header

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
    forwarded = header(scope, b"x-forwarded-for")
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
