"""What the engine needs from below (the runner, a clock), as protocols, so tests can swap in
fakes. What it offers above is copygen.generation's Generator."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from copygen.domain import GenerationRequest, ScoreRequest
from copygen.generation import RowEvent, RowKey


@dataclass(frozen=True, slots=True)
class RunnerInfo:
    model_id: str
    device: str
    dtype: str
    load_seconds: float
    chat_template: bool
    #: Which forward pass runs the model ("transformers", "fused", "fused+onednn",
    #: "fused+kernel").
    forward: str = "transformers"


@dataclass(frozen=True, slots=True)
class RowSpec:
    """One sequence to decode: ``request`` sampled once with ``seed``; ``key`` names it."""

    key: RowKey
    request: GenerationRequest
    seed: int


class RunnerOutOfMemory(Exception):
    """The device ran out of memory during a step; the runner has forgotten its batch."""


class Runner(Protocol):
    """Loads a model and decodes rows step by step (continuous batching).

    Blocking: the engine calls it from its one model thread. Between two ``step`` calls rows
    may join (they are prefilled into the running batch) and leave (finished or dropped).
    """

    model_id: str

    @property
    def forward_passes_total(self) -> int:
        """Model forward calls so far (prefill and decode steps)."""

    @property
    def drafted_tokens_total(self) -> int:
        """Tokens guessed for speculative decoding so far (0 without speculation)."""

    @property
    def accepted_tokens_total(self) -> int:
        """Guessed tokens the model confirmed so far."""

    @property
    def reused_prompt_tokens_total(self) -> int:
        """Prompt tokens whose KV came from stored prefixes instead of a prefill so far."""

    def load(self) -> RunnerInfo: ...

    @property
    def revision(self) -> str:
        """Which weights ``model_id`` names, known without loading (part of cache keys)."""

    @property
    def active_rows(self) -> int: ...

    def step(self, join: Sequence[RowSpec], drop: Collection[RowKey]) -> list[RowEvent]: ...

    def reset(self) -> None:
        """Forget the running batch (after a step raised)."""

    def device_stats(self) -> dict[str, float]:
        """Accelerator figures for metrics and /health (empty on CPU)."""

    def release_memory(self) -> None:
        """Return cached accelerator memory to the device (no-op on CPU)."""

    def fallback_to_cpu(self) -> RunnerInfo:
        """Move the model to the CPU after repeated device failures (graceful degradation)."""

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Mean log-probability per token of each request's text after its messages, in one
        batched forward pass. Called between steps, on the model thread; the running batch
        is untouched."""


class Clock(Protocol):
    def monotonic(self) -> float: ...
