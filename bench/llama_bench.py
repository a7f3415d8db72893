"""`make bench`: copygen against llama.cpp's `llama-server` on the same weights, and copygen in
front of `llama-server` (COPYGEN_BACKEND_URL) against `llama-server` alone.

`llama-server` is built from the llama-cpp-python sdist's vendored llama.cpp (bench/
build_llama_server.sh, cached under ~/.cache/copygen/bench); its model is a BF16 GGUF
requantised from the embedded Q4_1 file (`llama-quantize --allow-requantize`), i.e. the
same weights copygen dequantises. Same client and prompts as bench/serve_bench.py; each
server runs alone, except the proxy run (copygen and llama-server together, as deployed).

Writes docs/llama-benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import Server, free_port
from serve_bench import MAX_TOKENS, PROMPT, Run, bench_server

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("COPYGEN_BENCH_CACHE", Path.home() / ".cache/copygen/bench"))
SERVER_ARGS = ["-np", "32", "-c", "16384", "-t", str(os.cpu_count() or 2)]


def build_llama_server(build: str = "native") -> Path:
    """The directory holding llama-server and llama-quantize (built once, then cached); ``build``
    is "native" or "noamx" (bench/build_llama_server.sh)."""
    out = subprocess.run(
        [str(ROOT / "bench/build_llama_server.sh"), build],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def bf16_gguf(bin_dir: Path) -> Path:
    from copygen.engine.model.weights import embedded_gguf_path

    target = CACHE / "SmolLM2-135M-Instruct.BF16.gguf"
    if not target.exists():
        partial = target.with_suffix(".partial")
        subprocess.run(
            [str(bin_dir / "llama-quantize"), "--allow-requantize", str(embedded_gguf_path()),
             str(partial), "BF16"],
            check=True, env={**os.environ, "LD_LIBRARY_PATH": str(bin_dir)},
            capture_output=True,
        )  # fmt: skip
        partial.rename(target)
    return target


def llama_server(bin_dir: Path, gguf: Path) -> Server:
    port = free_port()
    command = [str(bin_dir / "llama-server"), "-m", str(gguf), *SERVER_ARGS,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return Server("llama-server", command, {"LD_LIBRARY_PATH": str(bin_dir)}, port)


def copygen(name: str, **env: str) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "copygen", "serve", "--port", str(port)]
    return Server(name, command, {"COPYGEN_LOG_LEVEL": "warning", **env}, port)


def run_levels(
    server: Server, levels: list[int], temperature: float, tokenizer: Any, ready: str
) -> list[Run]:
    """Each level with enough requests to read a median (more for one client)."""
    runs = []
    for level in levels:
        per_client = 12 if level == 1 else 4
        runs += bench_server(
            server, "default", [level], per_client, ready, tokenizer, temperature, stop=False
        )
    server.stop()
    return runs


def matmul_peak_gflops() -> float:
    """The best bf16 matmul rate this machine reaches with torch (2048², a few repeats)."""
    import time

    import torch

    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    b = torch.randn(2048, 2048, dtype=torch.bfloat16)
    best = 0.0
    for _ in range(8):
        started = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * 2048**3 / (time.perf_counter() - started) / 1e9)
    return best


def table(rows: list[tuple[str, float, int, Run, Run, str]]) -> list[str]:
    lines = [
        "| load | clients | server | req/s | tok/s | p50 s | TTFT p50 s | llama-server req/s "
        "| llama-server p50 s | ratio req/s | ratio tok/s | ratio p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load, temperature, clients, mine, peer, name in rows:
        m, p = mine.figures(), peer.figures()
        lines.append(
            f"| {load}, t={temperature:g} | {clients} | {name} | {m['req_s']:.2f} | "
            f"{m['tok_s']:.0f} | {m['p50_s']:.3f} | {m['ttft_p50_s']:.3f} | {p['req_s']:.2f} | "
            f"{p['p50_s']:.3f} | **{m['req_s'] / p['req_s']:.2f}x** | "
            f"{m['tok_s'] / p['tok_s']:.2f}x | {m['p50_s'] / p['p50_s']:.2f}x |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,16,32")
    parser.add_argument("--temperatures", default="0.7,0")
    parser.add_argument("--out", default="docs/llama-benchmarks.md")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    temperatures = [float(x) for x in args.temperatures.split(",")]

    from transformers import AutoTokenizer

    from copygen.config import Settings
    from copygen.engine.model.weights import prepare_embedded_model

    tokenizer = AutoTokenizer.from_pretrained(
        str(prepare_embedded_model(Settings().model_cache_dir)), local_files_only=True
    )
    bin_dir = build_llama_server()
    gguf = bf16_gguf(bin_dir)
    rows: list[tuple[str, float, int, Run, Run, str]] = []
    for temperature in temperatures:
        peer = run_levels(llama_server(bin_dir, gguf), levels, temperature, tokenizer, "/health")
        ours = run_levels(copygen("copygen"), levels, temperature, tokenizer, "/health/ready")
        rows += [("chat", temperature, p.concurrency, o, p, "copygen (in-process)")
                 for o, p in zip(ours, peer, strict=True)]  # fmt: skip
        if temperature == 0:  # the proxy's overhead, on answers of the same length
            backend = llama_server(bin_dir, gguf)
            backend.wait_ready("/health")
            front = copygen("copygen-proxy", COPYGEN_BACKEND_URL=f"{backend.url}/v1")
            try:
                proxied = run_levels(front, levels, temperature, tokenizer, "/health/ready")
            finally:
                backend.stop()
            rows += [("chat", temperature, p.concurrency, o, p, "copygen → llama-server")
                     for o, p in zip(proxied, peer, strict=True)]  # fmt: skip
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    lines = [
        "# Benchmarks: copygen vs llama.cpp's llama-server",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores. Weights: SmolLM2-135M-Instruct, the "
        "embedded Q4_1 GGUF requantised to BF16 for llama-server; copygen dequantises the same "
        "file to bf16. llama-server built from the llama-cpp-python sdist's vendored llama.cpp, "
        f"run as `llama-server {' '.join(SERVER_ARGS)}`; copygen with default settings. Load: "
        f'streaming chat completions, distinct prompts ("{PROMPT}"), max_tokens {MAX_TOKENS}, '
        "the same async client for every server; each server alone on the machine, except "
        "copygen → llama-server (both processes share the cores, as deployed). Ratios are "
        "copygen / llama-server alone at the same load; at t=0.7 answers differ in length from "
        "server to server, so tok/s is the fairer ratio there. The proxy's overhead is measured "
        "at t=0 (the same answers through copygen and without it). Reproduce with `make bench`.",
        "",
        *table(rows),
        "",
        f"Errors across all runs: {sum(r[3].errors + r[4].errors for r in rows)}.",
    ]
    peak = matmul_peak_gflops()
    params = 134.5e6  # SmolLM2-135M
    roofline = peak * 1e9 / (2 * params)
    best = max((r[3].figures()["tok_s"], r[5]) for r in rows if "in-process" in r[5])[0]
    lines += [
        "",
        f"Roofline: bf16 matmul peak measured here {peak:.0f} GFLOP/s, i.e. at most "
        f"{roofline:,.0f} tok/s for a {params / 1e6:.0f}M-parameter model (2 FLOPs per "
        f"parameter per token, attention ignored). copygen's best decode throughput above: "
        f"{best:.0f} tok/s = {100 * best / roofline:.1f}% of it.",
    ]
    out = Path(args.out)
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
