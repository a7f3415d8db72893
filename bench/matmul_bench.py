"""The projections of one decoding step, in isolation: oneDNN's prepacked bf16 matmul (what
llama.OneDNNLinear runs) against kernels.cpp's ``packed_linear`` (llama.KernelLinear), on
SmolLM2-135M's shapes: 30 layers' fused q/k/v, output, fused gate/up and down projections and
the LM head, each with its own weights (269 MB in bf16), so that the weights come from memory
as in the model and not from a cache the call before warmed. Per row count, the fastest of
the repeats, the two taking turns (other jobs share the machine); and one pass over as many
bytes (``sum``), the rate memory gives here.

    python bench/matmul_bench.py                 # 1, 6, 16, 48, 96 and 256 rows
    python bench/matmul_bench.py --rows 1 6      # some row counts
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python bench/matmul_bench.py   # oneDNN without AMX
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from copygen.config import Settings
from copygen.engine.model.device import onednn_uses_amx
from copygen.engine.model.kernels import cpu_ops
from copygen.engine.model.llama import KernelLinear, Linear, OneDNNLinear

LAYERS, HIDDEN, INTERMEDIATE, HEADS_OUT, VOCAB = 30, 576, 1536, 960, 49152
#: (out, in) of each layer's projections as FusedLlama runs them.
SHAPES = ((HEADS_OUT, HIDDEN), (HIDDEN, HIDDEN), (2 * INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE))


def step(projections: list[tuple[Linear, int]], head: Linear, rows: int) -> Callable[[], None]:
    """One step's projections (each with its input width) at ``rows`` rows."""
    inputs = {
        width: torch.randn(rows, width, dtype=torch.bfloat16) for width in (HIDDEN, INTERMEDIATE)
    }

    def run() -> None:
        for projection, width in projections:
            projection(inputs[width])
        head(inputs[HIDDEN])

    return run


def fastest_ms(calls: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: 1000 * seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[1, 6, 16, 48, 96, 256])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    ops = cpu_ops(Settings().model_cache_dir)
    if not ops.has_matmul:
        raise SystemExit("kernels.cpp's projection is not built here (needs AVX-512 BF16)")
    generator = torch.Generator().manual_seed(0)
    weights = [
        (torch.randn(out, width, generator=generator) * 0.02).to(torch.bfloat16)
        for _ in range(LAYERS)
        for out, width in SHAPES
    ]
    head_weight = (torch.randn(VOCAB, HIDDEN, generator=generator) * 0.02).to(torch.bfloat16)
    kinds: dict[str, type[Linear]] = {"onednn": OneDNNLinear, "kernel": KernelLinear}
    built = {
        name: ([(kind(weight), weight.shape[1]) for weight in weights], kind(head_weight))
        for name, kind in kinds.items()
    }
    total = sum(w.numel() for w in weights) * 2 + head_weight.numel() * 2
    flat = torch.randn(total // 2, generator=generator).to(torch.bfloat16)
    memory = fastest_ms({"sum": lambda: flat.sum() and None}, args.repeats)["sum"]
    print(f"{total / 1e6:.0f} MB of weights; one pass over as many bytes: {memory:.1f} ms "
          f"({total / memory / 1e6:.1f} GB/s); {torch.get_num_threads()} threads; "
          f"oneDNN on AMX: {onednn_uses_amx()}")  # fmt: skip
    print("| rows | oneDNN ms | kernel ms | kernel / oneDNN |")
    print("|---|---|---|---|")
    for rows in args.rows:
        calls = {name: step(*parts, rows) for name, parts in built.items()}
        for call in calls.values():
            call()
        ms = fastest_ms(calls, args.repeats)
        print(f"| {rows} | {ms['onednn']:.1f} | {ms['kernel']:.1f} | "
              f"{ms['kernel'] / ms['onednn']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
