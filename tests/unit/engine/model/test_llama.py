"""The fused forward's building blocks, on random tensors (no model)."""

from __future__ import annotations

import pytest
import torch

from copygen.engine.model.device import packs_bf16
from copygen.engine.model.llama import Linear, attention_mask_for, bucket


@pytest.mark.skipif(
    not packs_bf16(torch.bfloat16, torch.device("cpu")), reason="no oneDNN bf16 on this CPU"
)
def test_prepacked_bf16_projection_equals_a_plain_one_for_any_row_count() -> None:
    torch.manual_seed(1)
    weight = torch.randn(96, 64, dtype=torch.bfloat16)
    packed = Linear(weight, pack=True)
    for rows in (1, 5, 16, 70, 300):  # 70: padded to 80; 300: two calls
        x = torch.randn(rows, 64, dtype=torch.bfloat16)
        expected = torch.nn.functional.linear(x.float(), weight.float())
        torch.testing.assert_close(packed(x).float(), expected, rtol=2e-2, atol=5e-2)


def test_packed_projections_run_a_bounded_set_of_row_counts() -> None:
    sizes = {bucket(rows) for rows in range(1, Linear.CHUNK_ROWS + 1)}
    assert len(sizes) == 31
    assert all(bucket(rows) >= rows for rows in range(1, Linear.CHUNK_ROWS + 1))
    assert bucket(6) == 6
    assert bucket(97) == 112


def test_a_padded_query_attends_to_itself_and_nothing_is_masked_entirely() -> None:
    padding = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    mask = attention_mask_for(padding, new=3)
    assert mask.shape == (2, 1, 3, 5)
    # row 0, first new position (column 2): earlier unpadded columns up to itself
    assert mask[0, 0, 0].tolist() == [False, False, True, False, False]
    assert mask[1, 0, 2].tolist() == [True, True, True, True, True]
    assert bool(mask.any(dim=-1).all())
