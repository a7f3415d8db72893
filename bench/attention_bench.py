"""Decode attention at each call site, in isolation: PyTorch's CPU flash kernel against
kernels.cpp's ``decode_attention``, on SmolLM2-135M's shapes (3 KV heads, 3 query heads each,
head dim 64, bf16). Each "step" runs one call per layer on 30 layers' own tensors, so the KV
comes from memory as in the model, not from a cache warmed by the call before; the figure is
the mean over layers of each layer's fastest call over the repeats, the two kernels taking
turns (other jobs share the machine).
Accuracy: max and mean absolute error against float64 attention.

    python bench/attention_bench.py            # every call site
    python bench/attention_bench.py --quick    # fewer repeats
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from copygen.config import Settings
from copygen.engine.model.kernels import CompiledOps, cpu_ops

LAYERS, KV_HEADS, GROUP, DIM, PREFIX = 30, 3, 3, 64, 170
SCALE = DIM**-0.5
flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
Call = Callable[[int], Any]


def per_layer_ms(calls: dict[str, Call], repeats: int) -> dict[str, float]:
    """Per call: the mean over layers of each layer's fastest call. The calls take turns
    layer by layer, so other jobs' load falls on both alike, and a call that waited for a
    core another job held counts as its fastest repeat instead."""
    best = {name: [float("inf")] * LAYERS for name in calls}
    for _ in range(repeats):
        for layer in range(LAYERS):
            for name, call in calls.items():
                started = time.perf_counter()
                call(layer)
                best[name][layer] = min(best[name][layer], time.perf_counter() - started)
    return {name: 1000 * sum(times) / LAYERS for name, times in best.items()}


def kv(rows: int, positions: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, keys and values as the KV cache hands them out: views into a buffer with
    spare positions."""
    spare = positions + 64
    out = []
    for _ in range(LAYERS):
        k = torch.randn(rows, KV_HEADS, spare, DIM, dtype=torch.bfloat16)[:, :, :positions]
        v = torch.randn(rows, KV_HEADS, spare, DIM, dtype=torch.bfloat16)[:, :, :positions]
        out.append((k, v))
    return out


def padding(rows: int, queries: int, positions: int) -> torch.Tensor:
    """A keep-mask [rows, 1, queries, positions]: each row left-padded by up to a third."""
    columns = torch.arange(positions)
    starts = torch.randint(0, positions // 3 + 1, (rows, 1, 1, 1))
    return (columns >= starts).expand(rows, 1, queries, positions).contiguous()


def additive(keep: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(keep.shape, dtype=torch.bfloat16)
    return mask.masked_fill_(~keep, float("-inf"))


def errors(
    got: torch.Tensor,
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    keep: torch.Tensor | None,
) -> tuple[float, float]:
    group = query.shape[1] // keys.shape[1]
    expected = F.scaled_dot_product_attention(
        query.double(),
        keys.double().repeat_interleave(group, 1),
        values.double().repeat_interleave(group, 1),
        attn_mask=keep,
        scale=SCALE,
    )
    error = (got.double() - expected).abs()
    return float(error.max()), float(error.mean())


def report(
    site: str, shape: str, timings: dict[str, float], accuracy: dict[str, tuple[float, float]]
) -> None:
    ours, theirs = timings["kernel"], timings["flash"]
    print(
        f"| {site} | {shape} | {theirs:.3f} | {ours:.3f} | {theirs / ours:.2f}x | "
        f"{accuracy['flash'][0]:.4f} / {accuracy['flash'][1]:.5f} | "
        f"{accuracy['kernel'][0]:.4f} / {accuracy['kernel'][1]:.5f} |",
        flush=True,
    )


def own_part(rows: int, new: int, positions: int, repeats: int) -> None:
    """prefix_attention's own part (additive bf16 mask), and llama.py's path without a
    prefix: F.sdpa on grouped queries with a boolean mask (new == 1), or on all query heads
    with enable_gqa (new > 1)."""
    queries = GROUP * new
    layers = kv(rows, positions)
    query = torch.randn(rows, KV_HEADS, queries, DIM, dtype=torch.bfloat16)
    keep = padding(rows, queries, positions)
    mask = additive(keep)
    calls: dict[str, Call] = {
        "flash": lambda i: flash(query, *layers[i], 0.0, False, attn_mask=mask, scale=SCALE),
        "kernel": lambda i: torch.ops.copygen.decode_attention(query, *layers[i], mask, SCALE),
    }
    timings = per_layer_ms(calls, repeats)
    accuracy = {name: errors(call(0)[0], query, *layers[0], keep) for name, call in calls.items()}
    shape = f"{rows} rows x {new} new, {positions} pos"
    report("own part (prefix split)", shape, timings, accuracy)
    if new == 1:
        row_keep = keep[:, :, :1]
        sdpa = {
            "flash": lambda i: F.scaled_dot_product_attention(
                query, layers[i][0], layers[i][1], attn_mask=row_keep, scale=SCALE
            ),
            "kernel": lambda i: torch.ops.copygen.decode_attention(
                query, *layers[i], row_keep, SCALE
            ),
        }
        site = "llama new==1 (F.sdpa, bool mask)"
    else:
        heads = query.view(rows, KV_HEADS * GROUP, new, DIM)
        step_keep = keep[:, :, :new]
        sdpa = {
            "flash": lambda i: F.scaled_dot_product_attention(
                heads, layers[i][0], layers[i][1], attn_mask=step_keep, scale=SCALE, enable_gqa=True
            ),
            "kernel": lambda i: torch.ops.copygen.decode_attention(
                heads, *layers[i], step_keep, SCALE
            ),
        }
        site = "llama new>1 (F.sdpa gqa, bool mask)"
    timings = per_layer_ms(sdpa, repeats)
    report(site, shape, timings, accuracy)


def prefix_part(rows: int, new: int, repeats: int) -> None:
    """prefix_attention's prefix part: every row's queries stacked against one prefix."""
    queries = rows * GROUP * new
    layers = kv(1, PREFIX)
    query = torch.randn(1, KV_HEADS, queries, DIM, dtype=torch.bfloat16)
    calls: dict[str, Call] = {
        "flash": lambda i: flash(query, *layers[i], 0.0, False, scale=SCALE),
        "kernel": lambda i: torch.ops.copygen.decode_attention(query, *layers[i], None, SCALE),
    }
    timings = per_layer_ms(calls, repeats)
    accuracy = {name: errors(call(0)[0], query, *layers[0], None) for name, call in calls.items()}
    report("prefix part (1 prefix)", f"{rows} rows x {new} new, {PREFIX} pos", timings, accuracy)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rows", type=int, nargs="*", default=[6, 48, 96])
    parser.add_argument("--new", type=int, nargs="*", default=[1, 5])
    parser.add_argument("--positions", type=int, nargs="*", default=[30, 120, 300])
    args = parser.parse_args()
    ops = cpu_ops(Path(Settings().model_cache_dir))
    assert isinstance(ops, CompiledOps), "the kernels did not build"
    repeats = 5 if args.quick else 20
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads; ms per layer (min over {repeats} repeats)")
    print("| call site | shape | flash ms | kernel ms | speed-up | flash err max / mean "
          "| kernel err max / mean |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    with torch.inference_mode():
        for new in args.new:
            for rows in args.rows:
                for positions in args.positions:
                    own_part(rows, new, positions, repeats)
                prefix_part(rows, new, repeats)


if __name__ == "__main__":
    main()
