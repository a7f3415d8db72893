"""One row of the decode batch as it is being decoded."""

from __future__ import annotations

from dataclasses import dataclass, field

from copygen.engine.model.detokenize import Detokenizer
from copygen.engine.model.drafter import RowGuesses
from copygen.engine.protocols import RowSpec


@dataclass(slots=True)
class LiveRow:
    """One row being decoded: its output tokens (a final stop token included), its text so far
    and how much of it was reported, and its speculation state (greedy rows only)."""

    spec: RowSpec
    prompt_tokens: int
    text: Detokenizer
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0
    guesses: RowGuesses | None = None
