"""Service settings: read from COPYGEN_* environment variables, validated eagerly, built late."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import TypeVar, cast

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from copygen.auth import parse_api_keys
from copygen.config_sections import (
    EMBEDDED_MODEL_ID,
    SECTIONS,
    BackendSection,
    BatchingSection,
    CacheSection,
    CopySection,
    JobsSection,
    LimitsSection,
    ModelSection,
    ObservabilitySection,
    ResilienceSection,
    Section,
    ServerSection,
    StoreSection,
    default_data_dir,
    default_model_cache_dir,
)
from copygen.hostnames import LOOPBACK_NAMES, HostRule, host_rules

__all__ = [
    "EMBEDDED_MODEL_ID", "SECTIONS", "LOOPBACK", "Settings", "decode_key",
    "default_data_dir", "default_model_cache_dir",
]  # fmt: skip

S = TypeVar("S", bound=Section)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def decode_key(text: str) -> bytes:
    """A base64 key's bytes (empty when it is not base64)."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


class Settings(
    ServerSection,
    ModelSection,
    BatchingSection,
    CopySection,
    BackendSection,
    CacheSection,
    StoreSection,
    JobsSection,
    LimitsSection,
    ResilienceSection,
    ObservabilitySection,
    BaseSettings,
):
    """Every knob of the service, section by section (config_sections.py), each variable under
    its flat COPYGEN_* name. Tests construct it directly; the CLI reads the environment."""

    # Errors never show the value: it may be a key.
    model_config = SettingsConfigDict(
        env_prefix="COPYGEN_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    def section(self, kind: type[S]) -> S:
        """This section's values (already validated here) as their own model."""
        values = {name: getattr(self, name) for name in kind.model_fields}
        return cast(S, kind.model_construct(**values))

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cache_encryption_key")
    @classmethod
    def _aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(decode_key(value.get_secret_value())) not in (16, 24, 32):
            raise ValueError("COPYGEN_CACHE_ENCRYPTION_KEY must be base64 of 16, 24 or 32 bytes")
        return value

    @field_validator("api_keys")
    @classmethod
    def _parse_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not parse_api_keys(value.get_secret_value()):
            raise ValueError("COPYGEN_API_KEYS holds no key")
        return value

    @field_validator("rate_limit", "token_budget")
    @classmethod
    def _limit(cls, value: str | None) -> str | None:
        if value:
            from limits import parse

            try:
                parse(value)
            except ValueError as exc:
                raise ValueError("expected a limit such as 120/minute or 10 per second") from exc
        return value or None

    @field_validator("backend_url")
    @classmethod
    def _backend_url(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                "COPYGEN_BACKEND_URL must be an http(s) base URL such as http://vllm:8000/v1"
            )
        return value

    @field_validator("backend_routes")
    @classmethod
    def _routed_channels(cls, value: str) -> str:
        from copygen.copywriting.channels import CHANNELS

        unknown = sorted(
            c.strip() for c in value.split(",") if c.strip() and c.strip() not in CHANNELS
        )
        if unknown:
            raise ValueError(f"COPYGEN_BACKEND_ROUTES names unknown channels: {', '.join(unknown)}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        import ipaddress

        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError as exc:
                    raise ValueError("expected addresses or CIDRs separated by commas") from exc
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        host_rules(_entries(value))
        return value

    @model_validator(mode="after")
    def _no_open_door(self) -> Settings:
        if self.host not in LOOPBACK and self.api_keys is None and not self.allow_insecure_no_auth:
            raise ValueError(
                "binding a non-loopback address without COPYGEN_API_KEYS is refused; set keys, "
                "or COPYGEN_ALLOW_INSECURE_NO_AUTH=true behind your own authentication"
            )
        return self

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("COPYGEN_MODEL must name a model id or a local directory")
        return value.strip()

    @property
    def cors_origin_list(self) -> list[str]:
        return _entries(self.cors_origins)

    @property
    def allowed_host_rules(self) -> tuple[HostRule, ...]:
        """COPYGEN_ALLOWED_HOSTS, or by default the loopback names on a loopback bind (a page
        that rebinds its name to 127.0.0.1 still sends its name) and any name otherwise (a
        public bind has keys)."""
        default = LOOPBACK_NAMES if self.host in LOOPBACK else ("*",)
        return host_rules(_entries(self.allowed_hosts) or default)

    @property
    def backend_route_channels(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.backend_routes.split(",") if c.strip())

    def backend_key(self) -> str | None:
        """The backend's bearer key, read from its file when given as ``@path``."""
        if self.backend_api_key is None:
            return None
        text = self.backend_api_key.get_secret_value().strip()
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8").strip()
        return text or None

    @property
    def uses_embedded_model(self) -> bool:
        return self.model == EMBEDDED_MODEL_ID

    @model_validator(mode="before")
    @classmethod
    def _no_placeholders(cls, data: object) -> object:
        """Refuse secrets still holding k8s/base/secret.example.yaml's placeholders: they are
        well-formed values, so a deployment that forgot to replace them would start with keys
        and an AES key anyone can read in this repository."""
        if not isinstance(data, dict):
            return data
        for name in PLACEHOLDER_FIELDS:
            value = data.get(name)
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(text, str) and _is_placeholder(text):
                raise ValueError(
                    f"COPYGEN_{name.upper()} still holds the example's placeholder "
                    f"({PLACEHOLDER_MARKERS[0].upper()}...); set a real value"
                )
        return data


#: What the example Secret's values hold (this one's, and an earlier one's), in any case.
PLACEHOLDER_MARKERS = ("replace-me", "replace-with")
PLACEHOLDER_FIELDS = (
    "api_keys", "backend_api_key", "cache_encryption_key", "database_url", "redis_url",
    "webhook_secret",
)  # fmt: skip


def _entries(text: str) -> list[str]:
    """A comma list's entries, stripped, empty ones dropped."""
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def _is_placeholder(text: str) -> bool:
    """The text, or the bytes it is base64 of (an example AES key), holds a marker."""
    decoded = decode_key(text).decode("latin-1")
    return any(marker in t.lower() for marker in PLACEHOLDER_MARKERS for t in (text, decoded))
