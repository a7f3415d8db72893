"""The fused forward's building blocks, on random tensors, and its attention kernels on the
tiny random Llama (tests/tiny_model.py)."""

from __future__ import annotations

import pytest
import torch

from copygen.engine.model import device, kernels
from copygen.engine.model.device import packs_bf16
from copygen.engine.model.kernels import CompiledOps, TorchOps
from copygen.engine.model.kv import KVCache
from copygen.engine.model.llama import (
    FusedLlama,
    OneDNNLinear,
    attention_mask_for,
    bucket,
    choose_matmul,
)
from copygen.engine.model.prefix_attention import PrefixAttention, PrefixSlots, RowPrefix
from tests.tiny_model import tiny_model


@pytest.mark.skipif(
    not packs_bf16(torch.bfloat16, torch.device("cpu")), reason="no oneDNN bf16 on this CPU"
)
def test_prepacked_bf16_projection_equals_a_plain_one_for_any_row_count() -> None:
    torch.manual_seed(1)
    weight = torch.randn(96, 64, dtype=torch.bfloat16)
    packed = OneDNNLinear(weight)
    for rows in (1, 5, 16, 70, 300):  # 70: padded to 80; 300: two calls
        x = torch.randn(rows, 64, dtype=torch.bfloat16)
        expected = torch.nn.functional.linear(x.float(), weight.float())
        torch.testing.assert_close(packed(x).float(), expected, rtol=2e-2, atol=5e-2)


def test_packed_projections_run_a_bounded_set_of_row_counts() -> None:
    sizes = {bucket(rows) for rows in range(1, OneDNNLinear.CHUNK_ROWS + 1)}
    assert len(sizes) == 31
    assert all(bucket(rows) >= rows for rows in range(1, OneDNNLinear.CHUNK_ROWS + 1))
    assert bucket(6) == 6
    assert bucket(97) == 112


class _Ops(TorchOps):
    def __init__(self, has_matmul: bool) -> None:
        self.has_matmul = has_matmul


@pytest.mark.parametrize(
    ("requested", "has_matmul", "amx", "dtype", "expected"),
    [
        ("auto", True, False, torch.bfloat16, "kernel"),  # AVX-512 BF16 without AMX
        ("auto", True, True, torch.bfloat16, "onednn"),  # AMX: oneDNN's tiles
        ("kernel", True, True, torch.bfloat16, "kernel"),  # asked for
        ("onednn", True, False, torch.bfloat16, "onednn"),
        ("kernel", False, False, torch.bfloat16, "onednn"),  # not built here: the next one
        ("auto", True, False, torch.float32, "torch"),  # the kernel is bf16 only
    ],
)
def test_the_projections_are_chosen_from_what_the_cpu_and_build_offer(
    monkeypatch: pytest.MonkeyPatch,
    requested: str,
    has_matmul: bool,
    amx: bool,
    dtype: torch.dtype,
    expected: str,
) -> None:
    monkeypatch.setattr("copygen.engine.model.llama.onednn_uses_amx", lambda: amx)
    monkeypatch.setattr("copygen.engine.model.llama.packs_bf16", lambda d, dev: d == torch.bfloat16)
    cpu = torch.device("cpu")
    assert choose_matmul(requested, dtype, cpu, _Ops(has_matmul)) == expected


@pytest.mark.parametrize(
    ("tiles", "cap", "expected"),
    [
        (True, None, True),
        (True, "AVX512_CORE_BF16", False),  # how make bench measures the path without AMX
        (True, "avx512_core_amx", True),
        (False, None, False),
    ],
)
def test_onednn_runs_on_amx_where_the_cpu_has_it_and_no_cap_forbids_it(
    monkeypatch: pytest.MonkeyPatch, tiles: bool, cap: str | None, expected: bool
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: tiles, raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert device.onednn_uses_amx() is expected


def test_the_fused_forward_with_the_projection_kernel_computes_what_onednn_does(
    compiled: CompiledOps,
) -> None:
    """bf16, every projection through kernels.cpp's packed_linear against oneDNN's: the
    logits of prefill and decoding steps agree to bf16 rounding."""
    if not compiled.has_matmul:
        pytest.skip("no AVX-512 BF16 here: the projection kernel is not built")
    model = tiny_model(chat=False)[0].to(torch.bfloat16)
    with torch.inference_mode():
        ours = FusedLlama(model, compiled, matmul="kernel")
        theirs = FusedLlama(model, compiled, matmul="onednn")
        assert (ours.matmul, theirs.matmul) == ("kernel", "onednn")
        for got, want in zip(_logits(ours, split=True), _logits(theirs, split=True), strict=True):
            torch.testing.assert_close(got.float(), want.float(), rtol=0.05, atol=0.25)


def test_a_padded_query_attends_to_itself_and_nothing_is_masked_entirely() -> None:
    padding = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    mask = attention_mask_for(padding, new=3)
    assert mask.shape == (2, 1, 3, 5)
    # row 0, first new position (column 2): earlier unpadded columns up to itself
    assert mask[0, 0, 0].tolist() == [False, False, True, False, False]
    assert mask[1, 0, 2].tolist() == [True, True, True, True, True]
    assert bool(mask.any(dim=-1).all())


# --- the forward pass with kernels.cpp's decode attention ------------------------------------

PREFIX = [5, 6, 7, 8, 9]
OWN, OWN_MASK = [[10, 11, 12], [1, 13, 14]], [[1, 1, 1], [0, 1, 1]]  # row 1 padded once
STEPS = [[[15], [16]], [[5, 6, 7], [8, 9, 10]]]  # a decoding step, then one with guesses


def _logits(fused: FusedLlama, *, split: bool) -> list[torch.Tensor]:
    """The last logits of a prefill of PREFIX + OWN and of each of STEPS; with ``split`` the
    rows' KV holds OWN onwards and PREFIX is attended apart (prefix_attention.py)."""
    rows = len(OWN)
    mask = torch.cat([torch.ones(rows, len(PREFIX), dtype=torch.long), torch.tensor(OWN_MASK)], 1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    kv, plan, start = KVCache(), None, 0
    if split:
        stored = KVCache()
        ids = torch.tensor([PREFIX])
        fused(
            stored,
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            position_ids=positions[:1, : len(PREFIX)],
        )
        entry = [(layer.keys.clone(), layer.values.clone()) for layer in stored.layers]
        prefixes: list[RowPrefix | None] = [(entry, len(PREFIX))] * rows
        plan = PrefixAttention.plan(PrefixSlots.of([p for p in prefixes if p]), prefixes)
        start = len(PREFIX)
    ids = (
        torch.tensor(OWN)
        if split
        else torch.cat([torch.tensor([PREFIX] * rows), torch.tensor(OWN)], 1)
    )
    out = [
        fused(
            kv,
            input_ids=ids,
            attention_mask=mask[:, start:],
            position_ids=positions[:, start:],
            prefix=plan,
        )
    ]
    for step in STEPS:
        ids = torch.tensor(step)
        mask = torch.cat([mask, torch.ones_like(ids)], 1)
        step_positions = positions[:, -1:] + 1 + torch.arange(ids.shape[1])
        positions = torch.cat([positions, step_positions], 1)
        out.append(
            fused(
                kv,
                input_ids=ids,
                attention_mask=mask[:, start:],
                position_ids=step_positions,
                prefix=plan,
            )
        )
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_forward_with_the_decode_attention_kernel_computes_what_torch_does(
    compiled: CompiledOps,
    decode_calls: list[int],
    monkeypatch: pytest.MonkeyPatch,
    dtype: torch.dtype,
) -> None:
    """Prefill, a decoding step and a step with guesses, with the prefix in the rows' KV or
    attended apart. float32: the kernel made to run every call (it runs bf16 only), to
    rounding; bf16: where CompiledOps runs it, to bf16 rounding."""
    if dtype == torch.float32:
        monkeypatch.setattr(kernels, "kernel_takes", lambda query: True)
    model = tiny_model(chat=False)[0].to(dtype)
    with torch.inference_mode():
        expected = _logits(FusedLlama(model, TorchOps()), split=False)
        for split in (False, True):
            fused = FusedLlama(model, compiled)
            decode_calls.clear()
            got = _logits(fused, split=split)
            assert decode_calls
            for ours, theirs in zip(got, expected, strict=True):
                if dtype == torch.float32:
                    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
                else:
                    torch.testing.assert_close(ours.float(), theirs.float(), rtol=0.05, atol=0.25)
