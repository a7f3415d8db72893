"""The prefix store, on token lists and stand-in KV (no model): what a prompt may reuse, how
much, and what is evicted when a budget is full."""

from __future__ import annotations

import torch

from copygen.engine.model.prefix import PrefixStore, PromptKV, common_prefix


def _kv(tag: float) -> PromptKV:
    return [(torch.full((1, 1, 1, 1), tag), torch.full((1, 1, 1, 1), tag))]


def test_common_prefix_counts_the_leading_tokens_both_share() -> None:
    assert common_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_a_prompt_reuses_the_longest_stored_prefix_but_always_runs_one_token() -> None:
    store = PrefixStore(budget_tokens=100)
    shorter, longer = _kv(1), _kv(2)
    store.add([1, 2, 3, 4, 5, 6], shorter)
    store.add([1, 2, 3, 4, 5, 6, 7, 8], longer)
    length, kv = store.lookup([1, 2, 3, 4, 5, 6, 7, 9])
    assert length == 7
    assert kv is longer
    # The same prompt again: all but its last token come from the store.
    assert store.lookup([1, 2, 3, 4, 5, 6])[0] == 5
    assert (store.reused_tokens_total, store.prefilled_tokens_total) == (12, 2)


def test_a_short_shared_prefix_is_not_worth_reusing() -> None:
    store = PrefixStore(budget_tokens=100)
    store.add([1, 2, 3, 9, 9, 9], _kv(1))
    assert store.lookup([1, 2, 3, 4, 5]) == (0, None)  # 3 < MIN_REUSE
    assert store.prefilled_tokens_total == 5


def test_the_least_recently_used_prompts_go_when_the_budget_is_full() -> None:
    store = PrefixStore(budget_tokens=12)
    store.add([1, 1, 1, 1, 1, 1], _kv(1))
    store.add([2, 2, 2, 2, 2, 2], _kv(2))
    store.lookup([1, 1, 1, 1, 1, 7])  # prompt 1 is used again: prompt 2 is now the oldest
    store.add([3, 3, 3, 3, 3, 3], _kv(3))
    assert list(store.entries) == [(1,) * 6, (3,) * 6]
    assert store.tokens == 12
    store.add(list(range(13)), _kv(4))  # larger than the whole budget: never kept
    assert store.tokens == 12


def test_shared_prefixes_have_their_own_budget_and_count_their_reuse() -> None:
    store = PrefixStore(budget_tokens=0, shared_budget_tokens=8)
    first, second = (1, 2, 3, 4), (5, 6, 7, 8, 9)
    store.keep_shared(first, _kv(1))
    assert store.shared(first) is not None
    assert store.reused_tokens_total == 4
    store.keep_shared(second, _kv(2))  # 9 tokens > 8: the older prefix goes
    assert store.shared(first) is None
    assert store.shared(second) is not None
    assert store.shared_tokens == 5
    store.keep_shared(second, _kv(3))  # kept once
    assert store.shared_tokens == 5
    assert store.prefilled_tokens_total == 9


def test_a_continuation_is_found_by_its_whole_prompt_and_evicted_oldest_first() -> None:
    store = PrefixStore(budget_tokens=0, continuation_budget_tokens=10)
    message = _kv(1)
    store.keep_continuation([1, 2, 3, 4, 5, 6, 7, 8, 9], 4, message)  # 5 tokens after 4
    assert store.continuation([1, 2, 3, 4, 5, 6, 7, 8, 9]) is message
    assert store.reused_tokens_total == 5
    assert store.continuation([1, 2, 3, 4, 5, 6, 7, 8]) is None  # another prompt
    store.keep_continuation([9, 9, 9, 9, 9, 9, 9], 1, _kv(2))  # 6 more: 11 > 10
    assert list(store.continuations) == [(9,) * 7]
    assert store.continuation_tokens == 6
    store.keep_continuation(list(range(20)), 2, _kv(3))  # larger than the budget: never kept
    assert store.continuation_tokens == 6
