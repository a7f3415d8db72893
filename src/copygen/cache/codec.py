"""Cached values: CopyResult ⇄ bytes. JSON with a schema version, zlib-compressed above a size
threshold and optionally sealed with AES-GCM (the cache key is the associated data, so a value
copied under another key does not decrypt). Anything that does not decode is a miss and is
overwritten later.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from copygen.cache.keys import CACHE_SCHEMA_VERSION
from copygen.domain import CopyResult, Flag, Readability, Usage, Variant

_PLAIN, _ZLIB, _SEALED = b"J", b"Z", b"E"
_NONCE_BYTES = 12
#: The most a value may inflate to; beyond, it is corrupt (a miss). A real result (at most
#: 10 variants of 512 tokens, with their checks) is tens of KiB. Without an encryption key
#: anyone who can write to Redis can store a zlib bomb: 254 KiB that inflate to 250 MiB, and
#: warm() decodes the 256 hottest entries at start (+770 MiB RSS measured before this cap).
MAX_INFLATED_BYTES = 4 * 1024 * 1024


class Codec:
    """CopyResult ⇄ bytes: ``J`` + JSON, ``Z`` + zlib(JSON), or ``E`` + nonce + AES-GCM(inner)."""

    def __init__(self, *, compress_min_bytes: int = 1024, key: bytes | None = None) -> None:
        self.compress_min_bytes = compress_min_bytes
        self._aead = AESGCM(key) if key else None

    def encode(self, cache_key: str, result: CopyResult) -> bytes:
        # which runner jobs made it matters only to the request that ran them
        envelope = {"v": CACHE_SCHEMA_VERSION, "result": result_to_dict(result)}
        raw = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        if len(raw) >= self.compress_min_bytes:
            inner = _ZLIB + zlib.compress(raw, 6)
        else:
            inner = _PLAIN + raw
        if self._aead is None:
            return inner
        nonce = os.urandom(_NONCE_BYTES)
        return _SEALED + nonce + self._aead.encrypt(nonce, inner, cache_key.encode())

    def decode(self, cache_key: str, blob: bytes) -> CopyResult | None:
        """The result, or None for anything corrupt, foreign, unsealed-when-sealing or old."""
        try:
            if self._aead is not None:
                if blob[:1] != _SEALED:
                    return None
                nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
                blob = self._aead.decrypt(nonce, sealed, cache_key.encode())
            kind, body = blob[:1], blob[1:]
            if kind == _ZLIB:
                inflated = _inflate(body)
                if inflated is None:
                    return None
                body = inflated
            elif kind != _PLAIN:
                return None
            envelope = json.loads(body)
            if envelope.get("v") != CACHE_SCHEMA_VERSION:
                return None
            return result_from_dict(envelope["result"])
        except Exception:  # noqa: BLE001 - any undecodable value is a miss
            return None


def _inflate(body: bytes) -> bytes | None:
    """zlib data inflated to at most MAX_INFLATED_BYTES; None when it holds more (or is cut)."""
    inflater = zlib.decompressobj()
    raw = inflater.decompress(body, MAX_INFLATED_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        return None
    return raw


def result_to_dict(result: CopyResult) -> dict[str, Any]:
    """A result as JSON-ready data (without the runner jobs that made it)."""
    stored = dataclasses.asdict(result)
    del stored["jobs"]
    return stored


def result_from_dict(data: dict[str, Any]) -> CopyResult:
    variants = [variant_from_dict(v) for v in data["variants"]]
    return CopyResult(
        id=str(data["id"]),
        model=str(data["model"]),
        channel=str(data["channel"]),
        variants=variants,
        requested=int(data["requested"]),
        rounds=int(data["rounds"]),
        usage=Usage(**data["usage"]),
        timings_ms={str(k): float(v) for k, v in data["timings_ms"].items()},
    )


def variant_from_dict(data: dict[str, Any]) -> Variant:
    ease = data.get("readability")
    return Variant(
        **{
            **data,
            "keywords_missing": tuple(data["keywords_missing"]),
            "flags": tuple(Flag(**flag) for flag in data.get("flags", ())),
            "readability": None if ease is None else Readability(**ease),
        }
    )
