"""`make bench`: copygen against `transformers serve --continuous-batching`, same client,
same prompts, same concurrency, one server at a time on this machine.

Writes docs/benchmarks.md and docs/benchmarks.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import Server, free_port

PROMPT = "Write a short catchy headline for a {product} (#{i})."
PRODUCTS = ("bike", "coffee maker", "running shoe", "solar charger", "backpack", "desk lamp")
MAX_TOKENS = 48
HEADLINE = (
    "The headline figures are the product's own workload, `POST /v1/copy` "
    "(docs/copy-benchmarks.md, first in `make bench`), then chat completions against "
    "llama.cpp's `llama-server` on the same weights, copygen in front of it, and the "
    "roofline fraction (docs/llama-benchmarks.md). This page is the second peer, "
    "`transformers serve`."
)


@dataclass
class Sample:
    latency_s: float
    ttft_s: float
    text: str
    tokens: int = 0  # counted after the run with the model's tokenizer


@dataclass
class Run:
    server: str
    concurrency: int
    wall_s: float
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    forward_passes: float | None = None

    def figures(self) -> dict[str, float]:
        latencies = sorted(s.latency_s for s in self.samples)
        ttfts = sorted(s.ttft_s for s in self.samples)
        tokens = sum(s.tokens for s in self.samples)
        return {
            "req_s": len(self.samples) / self.wall_s,
            "tok_s": tokens / self.wall_s,
            "p50_s": statistics.median(latencies),
            "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            "ttft_p50_s": statistics.median(ttfts),
        }


async def one_request(
    client: httpx.AsyncClient, model: str, prompt: str, temperature: float = 0.0
) -> Sample:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": temperature,
        "max_tokens": MAX_TOKENS,
        "stream": True,
    }
    started = time.perf_counter()
    ttft = None
    parts: list[str] = []
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            choices = chunk.get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                parts.append(choices[0]["delta"]["content"])
                if ttft is None:
                    ttft = time.perf_counter() - started
    latency = time.perf_counter() - started
    return Sample(latency, ttft if ttft is not None else latency, "".join(parts))


async def drive(
    server: Server,
    model: str,
    concurrency: int,
    per_client: int,
    offset: int,
    temperature: float = 0.0,
) -> Run:
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=server.url, timeout=600, limits=limits) as client:
        counter = iter(range(offset, offset + concurrency * per_client))
        run = Run(server.name, concurrency, 0.0)

        async def worker() -> None:
            for i in counter:
                prompt = PROMPT.format(product=PRODUCTS[i % len(PRODUCTS)], i=i)
                try:
                    sample = await one_request(client, model, prompt, temperature)
                    run.samples.append(sample)
                except httpx.HTTPError:
                    run.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.wall_s = time.perf_counter() - started
        return run


def forward_passes(server: Server) -> int | None:
    try:
        stats = httpx.get(server.url + "/health", timeout=5).json().get("engine", {})
        return int(stats["forward_passes"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None


def count_tokens(run: Run, tokenizer: Any) -> None:
    """Completion tokens from the streamed text, the same way for both servers (a server may
    send several tokens in one chunk)."""
    for sample in run.samples:
        sample.tokens = len(tokenizer(sample.text, add_special_tokens=False)["input_ids"])


def bench_server(
    server: Server,
    model: str,
    levels: list[int],
    per_client: int,
    ready_path: str,
    tokenizer: Any,
    temperature: float = 0.0,
    *,
    stop: bool = True,
) -> list[Run]:
    try:
        server.wait_ready(ready_path)
        # Warm-up: every code path once, and the allocator at the largest batch.
        asyncio.run(drive(server, model, max(levels), 1, 10_000, temperature))
        runs = []
        offset = 0
        for level in levels:
            before = forward_passes(server)
            run = asyncio.run(drive(server, model, level, per_client, offset, temperature))
            after = forward_passes(server)
            if before is not None and after is not None and run.samples:
                run.forward_passes = (after - before) / len(run.samples)
            offset += level * per_client
            count_tokens(run, tokenizer)
            runs.append(run)
            f = run.figures()
            print(f"{server.name:>8} t={temperature:g} c={level:<3} {f['req_s']:6.2f} req/s "
                  f"{f['tok_s']:7.1f} tok/s "
                  f"p50 {f['p50_s']:.2f}s p95 {f['p95_s']:.2f}s ttft {f['ttft_p50_s']:.2f}s "
                  f"errors {run.errors}", flush=True)  # fmt: skip
        return runs
    finally:
        if stop:
            server.stop()


def plot(ours: list[Run], peer: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for runs, label in ((ours, "copygen"), (peer, "transformers serve --cb")):
        levels = [r.concurrency for r in runs]
        left.plot(levels, [r.figures()["req_s"] for r in runs], marker="o", label=label)
        right.plot(levels, [r.figures()["p95_s"] for r in runs], marker="o", label=label)
    left.set(title="throughput", xlabel="concurrent clients", ylabel="requests / s")
    right.set(title="p95 latency", xlabel="concurrent clients", ylabel="seconds")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle(f"SmolLM2-135M-Instruct, bf16, {os.cpu_count()} CPU cores, {MAX_TOKENS} tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(ours: list[Run], peer: list[Run], per_client: int) -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = [
        "# Benchmarks: copygen vs transformers serve",
        "",
        HEADLINE,
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Model: the embedded SmolLM2-135M-Instruct as a plain safetensors directory, bf16, "
        "for both servers. Each server runs alone on the machine (one after the other).",
        "",
        "Load: the same async client for both, streaming `POST /v1/chat/completions` with "
        f'distinct prompts ("{PROMPT}"), temperature 0, max_tokens {MAX_TOKENS}; '
        f"each client sends {per_client} requests back to back after a warm-up round. "
        "Peer: `transformers serve --continuous-batching --dtype bfloat16`. "
        "tok/s counts the tokens of the streamed text (re-tokenized with the model's "
        "tokenizer, the same way for both servers). "
        "Reproduce with `make bench`.",
        "",
        "| clients | server | req/s | tok/s | p50 s | p95 s | TTFT p50 s "
        "| forward passes / request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mine, theirs in zip(ours, peer, strict=True):
        for run in (mine, theirs):
            f = run.figures()
            passes = "-" if run.forward_passes is None else f"{run.forward_passes:.2f}"
            name = "copygen" if run is mine else "transformers serve"
            lines.append(
                f"| {run.concurrency} | {name} | {f['req_s']:.2f} | {f['tok_s']:.0f} | "
                f"{f['p50_s']:.2f} | {f['p95_s']:.2f} | {f['ttft_p50_s']:.2f} | {passes} |"
            )
    lines += ["", "Ratio copygen / peer:", "", "| clients | req/s | p50 latency | TTFT p50 |",
              "|---|---|---|---|"]  # fmt: skip
    for mine, theirs in zip(ours, peer, strict=True):
        m, t = mine.figures(), theirs.figures()
        lines.append(
            f"| {mine.concurrency} | {m['req_s'] / t['req_s']:.2f}x | "
            f"{m['p50_s'] / t['p50_s']:.2f}x | {m['ttft_p50_s'] / t['ttft_p50_s']:.2f}x |"
        )
    errors = sum(r.errors for r in ours + peer)
    lines += ["", f"Errors across all runs: {errors}.", "", "![throughput and p95](benchmarks.png)"]
    return "\n".join(lines) + "\n"


#: From this line on, docs/benchmarks.md is written by hand; a rerun keeps it.
KEEP_MARKER = "<!-- written by hand from here on: bench/serve_bench.py keeps it -->"


def hand_written(path: Path) -> str:
    """The hand-written part of an earlier report (comparisons, reading notes), if any."""
    text = path.read_text() if path.exists() else ""
    start = text.find(KEEP_MARKER)
    return "" if start < 0 else "\n" + text[start:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,8,16,32")
    parser.add_argument("--per-client", type=int, default=4)
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--only", choices=["copygen", "peer"], default=None)
    parser.add_argument(
        "--copygen-env", action="append", default=[], help="KEY=VALUE for the copygen server"
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    from copygen.config import Settings
    from copygen.engine.model.weights import prepare_embedded_model

    model_dir = str(prepare_embedded_model(Settings().model_cache_dir))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    bin_dir = Path(sys.executable).parent
    peer_runs: list[Run] = []
    our_runs: list[Run] = []
    if args.only in (None, "peer"):
        port = free_port()
        peer = Server(
            "peer",
            [str(bin_dir / "transformers"), "serve", "--continuous-batching", "--dtype",
             "bfloat16", "--host", "127.0.0.1", "--port", str(port), model_dir],
            {}, port,
        )  # fmt: skip
        peer_runs = bench_server(peer, model_dir, levels, args.per_client, "/v1/models", tokenizer)
    if args.only in (None, "copygen"):
        port = free_port()
        ours = Server(
            "copygen",
            [sys.executable, "-m", "copygen", "serve", "--port", str(port)],
            {
                "COPYGEN_LOG_LEVEL": "warning",
                "COPYGEN_MAX_BATCH_SIZE": "32",
                "COPYGEN_PREFIX_CACHE": "true",
                "COPYGEN_SPECULATIVE_SHARED": "true",
                **dict(item.split("=", 1) for item in args.copygen_env),
            },
            port,
        )
        our_runs = bench_server(
            ours, "copygen", levels, args.per_client, "/health/ready", tokenizer
        )
    if our_runs and peer_runs:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report(our_runs, peer_runs, args.per_client) + hand_written(out))
        plot(our_runs, peer_runs, out.with_suffix(".png"))
        print(out.read_text())


if __name__ == "__main__":
    main()
