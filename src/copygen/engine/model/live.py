"""One row of the decode batch as it is being decoded."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from copygen.engine.model.detokenize import Detokenizer
from copygen.engine.model.drafter import RowGuesses
from copygen.engine.model.prefix_attention import RowPrefix
from copygen.engine.protocols import RowSpec


@dataclass(slots=True)
class LiveRow:
    """One row being decoded: its output tokens (a final stop token included), its text so far
    and how much of it was reported, and its speculation state: guesses, and for a sampled row
    the logits at each position of its latest guesses (speculative sampling needs the whole
    distribution there, not only the greedy token). ``prefix``: the stored prompt prefix the
    row attends apart, not held in the batch's KV (prefix_attention.py). ``logprobs``: for a
    request that asks (GenerationRequest.logprobs), each output token's log-probability."""

    spec: RowSpec
    prompt_tokens: int
    text: Detokenizer
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0
    guesses: RowGuesses | None = None
    draft_logits: torch.Tensor | None = None
    prefix: RowPrefix | None = None
    logprobs: list[float] = field(default_factory=list)
