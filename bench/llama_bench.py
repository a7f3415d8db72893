"""`make bench`: copygen against llama.cpp's `llama-server` on the same weights, and copygen in
front of `llama-server` (COPYGEN_BACKEND_URL) against `llama-server` alone.

`llama-server` is built from the llama-cpp-python sdist's vendored llama.cpp (bench/
build_llama_server.sh, cached under ~/.cache/copygen/bench); its model is a BF16 GGUF
requantised from the embedded Q4_1 file (`llama-quantize --allow-requantize`), i.e. the
same weights copygen dequantises. Same client and prompts as bench/serve_bench.py; each
server runs alone, except the proxy run (copygen and llama-server together, as deployed).

The proxy run pins each process to cores of its own (``taskset``): llama-server on all cores
but the last (``-t`` that many), copygen on the last; its baseline is the same llama-server
straight, in rounds taken in turn with copygen's (the load client unpinned). Unpinned,
llama-server's ``-t``-all threads meet at a barrier on every step, so whatever else runs on
the machine (copygen, the load client) stalls the whole step, and a proxy run unpinned charges
that to copygen (issue 31, item 5): on 2 cores with another process busy, a token took ~1 s
with `-t 2` unpinned, ~14 ms with `-t 1` on core 0. ``--proxy-only`` runs just that
comparison (about a minute at ``--levels 1,16``) and prints it.

Writes docs/llama-benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import Server, cpu_paths, free_port
from serve_bench import (
    MAX_TOKENS,
    PRODUCTS,
    PROMPT,
    Run,
    bench_server,
    count_tokens,
    drive,
    one_request,
)

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("COPYGEN_BENCH_CACHE", Path.home() / ".cache/copygen/bench"))
SERVER_ARGS = ["-np", "32", "-c", "16384"]


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


def split_cores() -> tuple[list[int], list[int]] | None:
    """(llama-server's cores, copygen's core) for the proxy run: copygen gets the last core
    this process may use, llama-server the others; None with one core (nothing to split)."""
    cores = sorted(os.sched_getaffinity(0))
    return (cores[:-1], cores[-1:]) if len(cores) > 1 else None


def pinned(cores: list[int] | None, command: list[str]) -> list[str]:
    return command if cores is None else ["taskset", "-c", ",".join(map(str, cores)), *command]


def llama_server(bin_dir: Path, gguf: Path, cores: list[int] | None = None) -> Server:
    """llama-server with one thread per core it runs on (every core, unpinned)."""
    port = free_port()
    threads = len(cores) if cores else os.cpu_count() or 2
    command = [str(bin_dir / "llama-server"), "-m", str(gguf), *SERVER_ARGS, "-t", str(threads),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return Server("llama-server", pinned(cores, command), {"LD_LIBRARY_PATH": str(bin_dir)}, port)


def copygen(name: str, cores: list[int] | None = None, **env: str) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "copygen", "serve", "--port", str(port)]
    return Server(name, pinned(cores, command), {"COPYGEN_LOG_LEVEL": "warning", **env}, port)


def per_client(level: int) -> int:
    """Requests per client at ``level`` clients: enough to read a median (more for one)."""
    return 12 if level == 1 else 4


def run_levels(
    server: Server, levels: list[int], temperature: float, tokenizer: Any, ready: str
) -> list[Run]:
    """Each level with per_client requests per client."""
    runs = []
    try:
        for level in levels:
            runs += bench_server(
                server, "default", [level], per_client(level), ready, tokenizer, temperature,
                stop=False,
            )  # fmt: skip
    finally:
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


#: Prompts of the paired 1-client measurement of the proxy's overhead.
PAIRED_PROMPTS = 24
#: Rounds per level of the proxy run, llama-server and copygen in turn.
PROXY_ROUNDS = 3


@dataclass
class ProxyRuns:
    """copygen → llama-server against the same llama-server straight: (proxied, direct) per
    level, and the paired 1-client overhead in ms."""

    pairs: list[tuple[Run, Run]]
    overhead_ms: float


async def paired_overhead_ms(direct: str, proxied: str, prompts: int) -> float:
    """The median over ``prompts`` prompts of (latency through copygen - latency direct), each
    prompt sent to both back to back, first to one and then the other in turn (the second
    finds its prompt in llama-server's cache): the overhead without the drift between two
    separate runs, which on a shared machine is larger than the overhead."""
    async with (
        httpx.AsyncClient(base_url=direct, timeout=600) as straight,
        httpx.AsyncClient(base_url=proxied, timeout=600) as through,
    ):
        differences = []
        for i in range(prompts + 1):  # the first is a warm-up
            prompt = PROMPT.format(product=PRODUCTS[i % len(PRODUCTS)], i=20_000 + i)
            if i % 2:
                there = (await one_request(through, "default", prompt)).latency_s
                here = (await one_request(straight, "default", prompt)).latency_s
            else:
                here = (await one_request(straight, "default", prompt)).latency_s
                there = (await one_request(through, "default", prompt)).latency_s
            differences.append(there - here)
    return statistics.median(differences[1:]) * 1000


def interleaved(
    direct: Server, proxied: Server, level: int, rounds: int, tokenizer: Any
) -> tuple[Run, Run]:
    """``rounds`` rounds of ``level`` clients, each against llama-server and copygen in turn
    (the same prompts to both, which goes first alternating), merged per side: what the
    machine's other load does to llama-server's speed falls on both sides alike."""
    merged = {server.name: Run(server.name, level, 0.0) for server in (direct, proxied)}
    for round_ in range(rounds):
        offset = round_ * level * per_client(level)
        for server in (direct, proxied) if round_ % 2 == 0 else (proxied, direct):
            run = asyncio.run(drive(server, "default", level, per_client(level), offset))
            count_tokens(run, tokenizer)
            f = run.figures()
            print(f"{server.name:>13} c={level:<3} round {round_ + 1}: {f['req_s']:6.2f} req/s "
                  f"p50 {f['p50_s']:.3f}s errors {run.errors}", flush=True)  # fmt: skip
            into = merged[server.name]
            into.wall_s += run.wall_s
            into.samples += run.samples
            into.errors += run.errors
    return merged[proxied.name], merged[direct.name]


def proxy_runs(
    bin_dir: Path, gguf: Path, levels: list[int], tokenizer: Any, rounds: int = PROXY_ROUNDS
) -> ProxyRuns:
    """copygen in front of llama-server against the same llama-server straight, at t=0 (the
    same answers through copygen and without it), each process pinned to cores of its own
    (split_cores), so the difference is copygen's alone."""
    llama_cores, copygen_cores = split_cores() or (None, None)
    backend = llama_server(bin_dir, gguf, llama_cores)
    front: Server | None = None
    try:
        backend.wait_ready("/health")
        front = copygen("copygen-proxy", copygen_cores, COPYGEN_BACKEND_URL=f"{backend.url}/v1")
        front.wait_ready("/health/ready")
        for server in (backend, front):  # warm-up: the allocator at the largest batch
            asyncio.run(drive(server, "default", max(levels), 1, 10_000))
        overhead = asyncio.run(paired_overhead_ms(backend.url, front.url, PAIRED_PROMPTS))
        pairs = [interleaved(backend, front, level, rounds, tokenizer) for level in levels]
    finally:
        if front is not None:
            front.stop()
        backend.stop()
    return ProxyRuns(pairs, overhead)


def overhead_line(runs: ProxyRuns) -> str:
    return (
        f"The proxy's overhead at 1 client, paired (each of {PAIRED_PROMPTS} prompts sent "
        f"through copygen and straight to llama-server back to back, in turn first to one and "
        f"to the other; median of the differences): **{runs.overhead_ms:+.1f} ms** a request."
    )


def pinning() -> str:
    """How the proxy run was pinned, in words."""
    split = split_cores()
    if split is None:
        return "unpinned (one core)"
    llama_cores, copygen_cores = split
    cores = ",".join(map(str, llama_cores))
    plural = "s" if len(llama_cores) > 1 else ""
    return (
        f"llama-server on core{plural} {cores} with `-t {len(llama_cores)}`, "
        f"copygen on core {copygen_cores[0]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,16,32")
    parser.add_argument("--temperatures", default="0.7,0")
    parser.add_argument("--out", default="docs/llama-benchmarks.md")
    parser.add_argument(
        "--proxy-only", action="store_true",
        help="only copygen → llama-server against llama-server straight; print, write nothing",
    )  # fmt: skip
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    temperatures = [float(x) for x in args.temperatures.split(",")]

    from transformers import AutoTokenizer

    from copygen.config import Settings
    from copygen.engine.model.weights import prepare_embedded_model

    tokenizer = AutoTokenizer.from_pretrained(
        str(prepare_embedded_model(Settings().model_cache_dir)), local_files_only=True
    )
    paths = cpu_paths()
    bin_dir = build_llama_server(paths[0].llama_build)
    gguf = bf16_gguf(bin_dir)
    proxy = f"copygen → llama-server ({pinning()})"
    if args.proxy_only:
        only = proxy_runs(bin_dir, gguf, levels, tokenizer)
        print("\n".join(table([("chat", 0, d.concurrency, p, d, proxy) for p, d in only.pairs])))
        print(f"\n{overhead_line(only)}")
        return
    rows: list[tuple[str, float, int, Run, Run, str]] = []
    proxied: ProxyRuns | None = None
    for path, temperature in itertools.product(paths, temperatures):
        # Each CPU path: copygen with its oneDNN setting against llama.cpp's matching build.
        path_bin = build_llama_server(path.llama_build)
        peer = run_levels(llama_server(path_bin, gguf), levels, temperature, tokenizer, "/health")
        ours = run_levels(
            copygen("copygen", **path.env), levels, temperature, tokenizer, "/health/ready"
        )
        name = "copygen (in-process)" + (f", {path.name}" if len(paths) > 1 else "")
        rows += [("chat", temperature, p.concurrency, o, p, name)
                 for o, p in zip(ours, peer, strict=True)]  # fmt: skip
        if temperature == 0 and path == paths[0]:  # the proxy's overhead, same answers
            proxied = proxy_runs(bin_dir, gguf, levels, tokenizer)
            rows += [("chat", 0, d.concurrency, p, d, proxy) for p, d in proxied.pairs]
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")
    lines = [
        "# Benchmarks: copygen vs llama.cpp's llama-server",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores. Weights: SmolLM2-135M-Instruct, the "
        "embedded Q4_1 GGUF requantised to BF16 for llama-server; copygen dequantises the same "
        "file to bf16. llama-server built from the llama-cpp-python sdist's vendored llama.cpp, "
        f"run as `llama-server {' '.join(SERVER_ARGS)} -t {os.cpu_count()}`; copygen with "
        f'default settings. Load: streaming chat completions, distinct prompts ("{PROMPT}"), '
        f"max_tokens {MAX_TOKENS}, the same async client for every server; each server alone "
        "on the machine. Ratios are copygen / llama-server alone at the same load; at t=0.7 "
        "answers differ in length from server to server, so tok/s is the fairer ratio there. "
        "The proxy's overhead is measured at t=0 (the same answers through copygen and without "
        "it), each process on cores of its own (named in the row; the load client unpinned), "
        f"against the same llama-server straight, {PROXY_ROUNDS} rounds each taken in turn: "
        "unpinned, llama-server's threads wait for each other at every step, so anything else "
        "running stalls it (bench/llama_bench.py). CPU paths measured: "
        + "; ".join(
            f"{p.name} (copygen {p.env or 'default'}, llama.cpp {p.llama_build} build)"
            for p in paths
        )  # fmt: skip
        + ". Reproduce with `make bench`.",
        "",
        *table(rows),
        "",
        f"Errors across all runs: {sum(r[3].errors + r[4].errors for r in rows)}.",
    ]
    if proxied is not None:
        lines += ["", overhead_line(proxied)]
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
