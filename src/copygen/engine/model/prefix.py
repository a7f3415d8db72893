"""The KV of recently prefilled prompts, for prefix reuse."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

#: One prompt's KV: (keys, values) per layer, each [1, kv heads, tokens, head dim].
PromptKV = list[tuple[torch.Tensor, torch.Tensor]]


class PrefixStore:
    """The KV of recently prefilled prompts, so a new prompt only prefills what it does not
    share with one of them (chat templates, system prompts, one-shot examples and templated
    user messages repeat across requests). Bounded by a total token budget, LRU."""

    MIN_REUSE = 4

    def __init__(self, budget_tokens: int = 8192) -> None:
        self.budget_tokens = budget_tokens
        self.entries: OrderedDict[tuple[int, ...], PromptKV] = OrderedDict()
        self.tokens = 0
        self.reused_tokens_total = 0
        self.prefilled_tokens_total = 0

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
