"""Host names: a ``Host`` header or an ``Origin`` read into (name, port), and the rules of
COPYGEN_ALLOWED_HOSTS. Pure, so settings validation can use it; api/middleware/hosts.py
enforces them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Names a loopback bind answers to by default, on any port.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def split_host(text: str) -> tuple[str, int | None] | None:
    """``name``, ``name:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address → (lower-case
    name without brackets or a trailing dot, port or None); None when it is none of these."""
    text = text.strip().lower()
    port_text = ""
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:]
    elif text.count(":") > 1:  # a bare IPv6 address (in settings only)
        name = text
    else:
        name, _, port_text = text.partition(":")
    name = name.rstrip(".")
    if not name or (port_text and not (port_text.isdigit() and len(port_text) <= 5)):
        return None
    return name, int(port_text) if port_text else None


@dataclass(frozen=True, slots=True)
class HostRule:
    """One allowed name: exact, or ``*.domain`` (any name under it), or ``*`` (any); on one
    port, or (without one) on any."""

    name: str
    port: int | None

    def allows(self, name: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.name == "*":
            return True
        if self.name.startswith("*."):
            return name.endswith(self.name[1:])
        return name == self.name


def host_rules(entries: Iterable[str]) -> tuple[HostRule, ...]:
    """The rules of COPYGEN_ALLOWED_HOSTS' entries (invalid ones raise ValueError)."""
    rules = []
    for entry in entries:
        parsed = split_host(entry)
        if parsed is None:
            raise ValueError(
                "expected names such as localhost, copy.example.com:8443 or *.example.com"
            )
        rules.append(HostRule(*parsed))
    return tuple(rules)


def same_origin(origin: str, host: str) -> bool:
    """The page at ``origin`` (``scheme://host[:port]``) is this request's own ``host``."""
    parts = urlsplit(origin.strip().lower())
    there, here = split_host(parts.netloc), split_host(host)
    if there is None or here is None or parts.scheme not in ("http", "https"):
        return False
    default = 443 if parts.scheme == "https" else 80
    return (there[0], there[1] or default) == (here[0], here[1] or default)
