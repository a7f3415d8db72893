"""What the engine needs from the outside world, as protocols, so tests can swap in fakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from copygen.domain import Generation, GenerationRequest


@dataclass(frozen=True, slots=True)
class RunnerInfo:
    model_id: str
    device: str
    dtype: str
    load_seconds: float
    chat_template: bool


class Runner(Protocol):
    """Loads a model and generates. Blocking: the engine calls it from a worker thread."""

    model_id: str

    def load(self) -> RunnerInfo: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
