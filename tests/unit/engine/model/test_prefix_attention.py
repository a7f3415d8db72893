"""Decoding attention split at the rows' stored prefixes, on random tensors (no model): the
same numbers as plain attention over each row's prefix followed by its own positions, with
either kernel that returns the log-sum-exp (PyTorch's flash kernel, kernels.cpp's)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from copygen.engine.model.kernels import flash
from copygen.engine.model.prefix_attention import (
    AttentionLse,
    PrefixAttention,
    PrefixSlots,
    RowPrefix,
    additive,
)

HEADS, DIM, LAYERS = 2, 8, 2


def _entry(length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (torch.randn(1, HEADS, length, DIM), torch.randn(1, HEADS, length, DIM))
        for _ in range(LAYERS)
    ]


def _kernel(name: str, request: pytest.FixtureRequest) -> AttentionLse:
    if name == "flash":
        return flash
    request.getfixturevalue("compiled")  # built and loaded (conftest.py)
    return torch.ops.copygen.decode_attention


@pytest.mark.parametrize("kernel", ["flash", "compiled"])
@pytest.mark.parametrize("queries", [1, 6])
@pytest.mark.parametrize("lone", [False, True])
def test_split_attention_equals_attention_over_prefix_and_own_positions(
    queries: int, lone: bool, kernel: str, request: pytest.FixtureRequest
) -> None:
    attention = _kernel(kernel, request)
    torch.manual_seed(5)
    long, short = _entry(9), _entry(6)
    # rows: two on the long prefix, one on its first 7 positions, one on the short prefix,
    # one without a prefix; or all on the long one
    prefixes: list[RowPrefix | None] = [(long, 9), (short, 6), (long, 9), None, (long, 7)]
    if lone:
        prefixes = [(long, 9)] * 5
    rows, own = len(prefixes), 5
    keys, values = torch.randn(rows, HEADS, own, DIM), torch.randn(rows, HEADS, own, DIM)
    keep = torch.ones(rows, 1, queries, own, dtype=torch.bool)
    keep[0, ..., :2] = False  # left padding of a shorter row
    keep[3, ..., :1] = False
    query = torch.randn(rows, HEADS, queries, DIM)
    slots = PrefixSlots.of([p for p in prefixes if p is not None])
    plan = PrefixAttention.plan(slots, prefixes)
    assert plan.lone is lone
    assert len(slots.entries) == (1 if lone else 3)
    assert (slots.mask is None) is lone
    for layer in range(LAYERS):
        got = plan.attend(
            layer, query, keys, values, additive(keep, query.dtype), 0.3, attention=attention
        )
        for row, prefix in enumerate(prefixes):
            row_keys, row_values, row_keep = keys[row], values[row], keep[row]
            if prefix is not None:
                entry, length = prefix
                row_keys = torch.cat([entry[layer][0][0, :, :length], row_keys], dim=1)
                row_values = torch.cat([entry[layer][1][0, :, :length], row_values], dim=1)
                seen = torch.ones(1, queries, length, dtype=torch.bool)
                row_keep = torch.cat([seen, row_keep], dim=-1)
            expected = F.scaled_dot_product_attention(
                query[row], row_keys, row_values, attn_mask=row_keep, scale=0.3
            )
            torch.testing.assert_close(got[row], expected, rtol=1e-5, atol=1e-5)


def test_slots_cover_the_prefixes_they_stacked_and_a_lone_prefix_is_not_copied() -> None:
    entry, other = _entry(4), _entry(4)
    slots = PrefixSlots.of([(entry, 4), (entry, 4)])
    assert len(slots.entries) == 1
    assert slots.mask is None
    assert slots.keys[0].data_ptr() == entry[0][0].data_ptr()
    assert slots.covers([(entry, 4), None])
    assert not slots.covers([(entry, 3)])
    assert not slots.covers([(other, 4)])
