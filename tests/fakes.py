"""Fakes that live below the engine: a runner that needs no model."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from copygen.domain import Completion, Generation, GenerationRequest
from copygen.engine.protocols import RunnerInfo


class FakeRunner:
    """Answers each row with ``reply(request, row)``; records every call.

    ``gate`` (when set) blocks loading until the test releases it; ``hang`` blocks generation.
    """

    model_id = "fake/model"

    def __init__(
        self,
        reply: Callable[[GenerationRequest, int], str] | None = None,
        *,
        gate: threading.Event | None = None,
        hang: threading.Event | None = None,
    ) -> None:
        self.reply = reply or (lambda request, row: f"Fresh copy number {row + 1}")
        self.gate = gate
        self.hang = hang
        self.calls: list[list[GenerationRequest]] = []

    def load(self) -> RunnerInfo:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        return RunnerInfo(self.model_id, "cpu", "float32", 0.0, True)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.calls.append(list(requests))
        if self.hang is not None:
            self.hang.wait(timeout=10)
        return [
            Generation(
                prompt_tokens=sum(len(m.content.split()) for m in request.messages),
                completions=tuple(
                    Completion(self.reply(request, row), 5, "stop") for row in range(request.n)
                ),
            )
            for request in requests
        ]
