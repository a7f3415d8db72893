"""Speculative decoding from n-grams: guess a row's next tokens, let the model check them all in
one forward pass, keep the ones it agrees with (greedy rows) or the ones speculative sampling
keeps (sampled rows: engine/model/sampler.py). Pure Python (no torch), like vLLM's
``v1/spec_decode/ngram_proposer.py``.

A guess comes from the row's own prompt and output (the most recent token that followed the
row's last two tokens: copy repeats names, phrases and patterns) or else, when ``shared``, from
a table of what followed each token pair in recently finished rows. The model checks every
guess, so guesses change how many tokens a step yields, not which (up to bf16 rounding, which
differs between a multi-position pass and single steps; hence the shared table, which makes
guesses depend on history, is opt-in).

Worked example: a row whose context is ``[5, 6, 7, 5, 6]`` has seen ``7`` follow ``(5, 6)``,
so ``propose`` guesses ``[7, 5, 6, 7]`` (4 tokens, each pair looked up in turn). The model's
greedy tokens at the row's last position and after each guess are, say, ``[7, 5, 9, 1, 2]``:
``verify`` keeps the guesses it agrees with and its own token where it disagreed, so the
step yields ``[7, 5, 9]`` instead of one token, and the next guess budget is 2 + 2 = 4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from copygen.domain import SamplingParams

#: The most guesses a row starts with (and returns to while its guesses land).
MAX_GUESS_LIMIT = 16


def speculates(sampling: SamplingParams, *, sampled_rows: bool = False) -> bool:
    """Greedy rows guess unless they have a repetition penalty (their guesses are checked
    against the raw greedy token); sampled rows guess only with ``sampled_rows`` (speculative
    sampling keeps a guess with the probability the model gives it: RowSampler.speculate;
    measured on the copy workload it halved briefs/s on 2 CPU cores, docs/batching.md)."""
    if sampling.temperature > 0:
        return sampled_rows
    return sampling.repetition_penalty == 1.0


@dataclass(slots=True)
class RowGuesses:
    """One row's speculation state: its tokens so far (prompt and output), which token last
    followed each pair of them, the guesses fed after its last token in the latest forward
    pass with the model's greedy token at each of those positions, and its guess budget."""

    context: list[int] = field(default_factory=list)
    follows: dict[tuple[int, int], int] = field(default_factory=dict)
    drafts: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    limit: int = MAX_GUESS_LIMIT

    def extend(self, tokens: Sequence[int]) -> None:
        context, follows = self.context, self.follows
        for token in tokens:
            if len(context) >= 2:
                follows[(context[-2], context[-1])] = token
            context.append(token)

    def verify(self) -> tuple[list[int], int]:
        """After the forward pass that checked ``drafts``: (the tokens this step yields, how
        many of the guesses the model confirmed). Clears the guesses.

        Next time the row guesses two more than were confirmed: rows whose guesses miss stop
        paying for long guesses (every row's slots widen the step to the longest), rows whose
        guesses land climb back to the maximum. Measured in a closed loop (16/32 clients):
        +12%/+17% req/s over always guessing the maximum."""
        drafts, targets = self.drafts, self.targets
        kept = 0
        while kept < len(drafts) and drafts[kept] == targets[kept]:
            kept += 1
        return self.verify_drawn(drafts[:kept] + [targets[kept]])

    def verify_drawn(self, yielded: list[int]) -> tuple[list[int], int]:
        """Like ``verify``, for a sampled row whose step ``yielded`` these tokens (its kept
        guesses, then one drawn token)."""
        kept = len(yielded) - 1
        self.limit = kept + 2
        self.drafts, self.targets = [], []
        return yielded, kept


class NgramDrafter:
    """Proposes guesses for rows (``propose``) and remembers finished rows (``learn``, only
    when ``shared``). Counts what it proposed and what the model accepted."""

    def __init__(
        self, max_tokens: int, *, shared: bool, sampled: bool = False, table_size: int = 1 << 16
    ) -> None:
        self.max_tokens = max_tokens
        self.shared = shared
        #: Whether sampled rows guess too (speculative sampling).
        self.sampled = sampled
        self.table_size = table_size
        self.recent: dict[tuple[int, int], int] = {}
        self.drafted_total = 0
        self.accepted_total = 0

    def propose(self, row: RowGuesses, budget: int) -> list[int]:
        """Up to ``min(max_tokens, budget)`` guesses for what follows ``row.context``."""
        context = row.context
        if len(context) < 2:
            return []
        first, second = context[-2], context[-1]
        guesses: list[int] = []
        for _ in range(min(self.max_tokens, budget)):
            key = (first, second)
            guess = row.follows.get(key)
            if guess is None:
                guess = self.recent.get(key)
            if guess is None:
                break
            guesses.append(guess)
            first, second = second, guess
        self.drafted_total += len(guesses)
        return guesses

    def verify(self, row: RowGuesses, drawn: list[int] | None = None) -> tuple[list[int], int]:
        """``row.verify()`` (or ``row.verify_drawn(drawn)`` for a sampled row), counted."""
        yielded, kept = row.verify() if drawn is None else row.verify_drawn(drawn)
        self.accepted_total += kept
        return yielded, kept

    def learn(self, context: Sequence[int]) -> None:
        """Remember what followed each token pair of a finished row (bounded, oldest out)."""
        if not self.shared:
            return
        recent = self.recent
        for i in range(2, len(context)):
            key = (context[i - 2], context[i - 1])
            recent.pop(key, None)
            recent[key] = context[i]
        while len(recent) > self.table_size:
            del recent[next(iter(recent))]
