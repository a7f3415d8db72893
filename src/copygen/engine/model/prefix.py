"""The KV of recently prefilled prompts, for prefix reuse."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

#: One prompt's KV: (keys, values) per layer, each [1, kv heads, tokens, head dim].
PromptKV = list[tuple[torch.Tensor, torch.Tensor]]


class PrefixStore:
    """Stored prompt KV, three kinds (engine/model/prefill.py says how each is used):

    - shared: the KV of conversation prefixes (system prompt, one-shot examples), each always
      prefilled alone, so reusing one is exact; bounded by ``shared_budget_tokens``, LRU;
    - continuations (``continuation_budget_tokens`` > 0): the KV of a chat prompt's last
      message after its conversation prefix (a brief's message), each prefilled alone on the
      stored prefix, so reusing one is exact too: the same brief's next round, primed
      differently, prefills only its answer start; LRU;
    - opportunistic (``budget_tokens`` > 0): the KV of recently prefilled prompts, so a new
      prompt only prefills what it does not share with one of them; LRU.
    """

    MIN_REUSE = 4

    def __init__(
        self,
        budget_tokens: int = 8192,
        shared_budget_tokens: int = 4096,
        continuation_budget_tokens: int = 0,
    ) -> None:
        self.budget_tokens = budget_tokens
        self.entries: OrderedDict[tuple[int, ...], PromptKV] = OrderedDict()
        self.tokens = 0
        self.shared_budget_tokens = shared_budget_tokens
        self.shared_entries: OrderedDict[tuple[int, ...], PromptKV] = OrderedDict()
        self.shared_tokens = 0
        self.continuation_budget_tokens = continuation_budget_tokens
        #: A prompt's tokens up to its answer → (where its conversation prefix ends, the KV of
        #: the positions after it).
        self.continuations: OrderedDict[tuple[int, ...], tuple[int, PromptKV]] = OrderedDict()
        self.continuation_tokens = 0
        self.reused_tokens_total = 0
        self.prefilled_tokens_total = 0

    def shared(self, prefix: tuple[int, ...]) -> PromptKV | None:
        """The stored KV of a conversation prefix, if kept."""
        kv = self.shared_entries.get(prefix)
        if kv is not None:
            self.shared_entries.move_to_end(prefix)
            self.reused_tokens_total += len(prefix)
        return kv

    def keep_shared(self, prefix: tuple[int, ...], kv: PromptKV) -> None:
        if prefix in self.shared_entries or len(prefix) > self.shared_budget_tokens:
            return
        self.shared_entries[prefix] = kv
        self.shared_tokens += len(prefix)
        self.prefilled_tokens_total += len(prefix)
        while self.shared_tokens > self.shared_budget_tokens:
            old, _ = self.shared_entries.popitem(last=False)
            self.shared_tokens -= len(old)

    def continuation(self, tokens: Sequence[int]) -> PromptKV | None:
        """The stored KV of ``tokens``' positions after their conversation prefix, if kept."""
        found = self.continuations.get(tuple(tokens))
        if found is None:
            return None
        self.continuations.move_to_end(tuple(tokens))
        start, kv = found
        self.reused_tokens_total += len(tokens) - start
        return kv

    def keep_continuation(self, tokens: Sequence[int], start: int, kv: PromptKV) -> None:
        """Keep the KV of ``tokens``' positions after ``start`` (their conversation prefix)."""
        key, length = tuple(tokens), len(tokens) - start
        if key in self.continuations or not 0 < length <= self.continuation_budget_tokens:
            return
        self.continuations[key] = (start, kv)
        self.continuation_tokens += length
        while self.continuation_tokens > self.continuation_budget_tokens:
            old, (begins, _) = self.continuations.popitem(last=False)
            self.continuation_tokens -= len(old) - begins

    def lookup(self, tokens: list[int]) -> tuple[int, PromptKV | None]:
        best, best_key = 0, None
        for key in self.entries:
            common = common_prefix(key, tokens)
            if common > best:
                best, best_key = common, key
        best = min(best, len(tokens) - 1)  # at least one token must run to give logits
        if best < self.MIN_REUSE or best_key is None:
            self.prefilled_tokens_total += len(tokens)
            return 0, None
        self.entries.move_to_end(best_key)
        self.reused_tokens_total += best
        self.prefilled_tokens_total += len(tokens) - best
        return best, self.entries[best_key]

    def add(self, tokens: list[int], kv: PromptKV) -> None:
        key = tuple(tokens)
        if key in self.entries or len(key) > self.budget_tokens:
            return
        self.entries[key] = kv
        self.tokens += len(key)
        while self.tokens > self.budget_tokens:
            old, _ = self.entries.popitem(last=False)
            self.tokens -= len(old)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length
