"""Who is calling: API keys parsed from COPYGEN_API_KEYS, kept as SHA-256 digests and found in
constant time, and the tenant of callers without a key.

Pure (no I/O beyond reading an ``@file``), so settings validation can use it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

KeyScope = Literal["plain", "admin"]
#: The tenant of requests without an API key.
ANONYMOUS = "anonymous"
MIN_KEY_CHARS = 16


@dataclass(frozen=True, slots=True)
class ApiKey:
    tenant: str
    scope: KeyScope
    digest: bytes


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_api_keys(text: str) -> list[ApiKey]:
    """``key``, ``tenant:key`` or ``tenant:key:admin`` entries, separated by commas or new
    lines; ``@path`` reads them from a file (``#`` starts a comment). Errors never show keys."""
    text = text.strip()
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"COPYGEN_API_KEYS file unreadable: {type(exc).__name__}") from exc
    keys: list[ApiKey] = []
    entries = [line.split("#", 1)[0] for line in text.replace(",", "\n").splitlines()]
    for number, entry in enumerate((e.strip() for e in entries if e.strip()), start=1):
        parts = entry.split(":")
        scope: KeyScope = "plain"
        if len(parts) == 3 and parts[2] in ("admin", "plain"):
            scope = "admin" if parts[2] == "admin" else "plain"
            parts = parts[:2]
        if len(parts) == 1:
            tenant, secret = "key-" + _digest(parts[0]).hex()[:8], parts[0]
        elif len(parts) == 2 and parts[0]:
            tenant, secret = parts
        else:
            raise ValueError(f"COPYGEN_API_KEYS entry {number} is not key, tenant:key or "
                             "tenant:key:admin")  # fmt: skip
        if len(secret) < MIN_KEY_CHARS:
            raise ValueError(
                f"COPYGEN_API_KEYS entry {number}: keys need at least {MIN_KEY_CHARS} characters"
            )
        keys.append(ApiKey(tenant, scope, _digest(secret)))
    return keys


class KeyRing:
    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = tuple(keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def find(self, presented: str) -> ApiKey | None:
        digest = _digest(presented)
        found = None
        for key in self._keys:  # every key, every time: no timing signal
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found
