"""Decode throughput of SmolLM2's architecture on a lent GPU (#21's GPU lever; not in CI).

Like gpu_check.py this builds SmolLM2-135M's exact architecture and tokenizer with random
weights (the embedded weights do not travel): speeds are the real model's, the text noise.
Each result is one JSON line (stdout and OUT/gpu_bench.jsonl):

1. ``agreement``: copygen's fused forward against transformers' forward on CUDA, bf16: greedy
   tokens of the same prompts through the engine, share of rows that agree token for token,
   and the relative error of one decoding step's logits;
2. ``engine``: the whole engine (continuous batching, sampling at temperature 0.7, top-p 0.9,
   detokenising, streaming bookkeeping) at 64 and 256 concurrent rows, 128 new tokens each,
   with transformers' forward and with the fused forward: tok/s, steps, and the share of the
   wall time spent inside the model's forward;
3. ``runner_direct`` (GPU_BENCH_PART=diagnose): the runner stepped in a plain loop, median
   step and forward times, and a profile of five steps (OUT/profile_ROWS.txt);
4. ``graph``: one fused decoding step at 256 rows over a static 256-position KV cache, eager
   and captured as a CUDA graph (the ceiling without per-step Python), and the sampler's cost
   for 256 rows of 49,152 logits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from gpu_check import build_model  # the same random-weight SmolLM2 (.gpu/model)
from transformers import AutoModelForCausalLM

from copygen.config import Settings
from copygen.deadline import Deadline
from copygen.domain import ChatMessage, Generation, GenerationRequest, SamplingParams
from copygen.engine.engine import Engine
from copygen.engine.model.llama import FusedLlama
from copygen.engine.model.runner import TransformersRunner


async def _generate(engine: Engine, requests: list[GenerationRequest]) -> list[Generation]:
    """Generate ``requests`` as one job within a minute."""
    return (await engine.run(requests, Deadline.within(60))).generations


OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp")
NEW_TOKENS = 128
#: "cpu" gives a quick local smoke run of the script itself (engine runs only, few rows).
DEVICE = os.environ.get("GPU_BENCH_DEVICE", "cuda")


def report(check: str, **figures: object) -> None:
    line = json.dumps({"check": check, **figures}, default=str)
    print(line, flush=True)
    with (OUT / "gpu_bench.jsonl").open("a") as out:
        out.write(line + "\n")


def request(i: int, temperature: float, tokens: int = NEW_TOKENS) -> GenerationRequest:
    prompt = f"Write three short catchy headlines for product number {i}. " + "context " * 24
    return GenerationRequest(
        messages=(ChatMessage("user", prompt),),
        sampling=SamplingParams(
            temperature=temperature, max_new_tokens=tokens, seed=i, repetition_penalty=1.0
        ),
    )


async def engine_for(model_dir: Path, *, fused: bool, rows: int) -> Engine:
    config = Settings(model=str(model_dir), device=DEVICE, dtype="bfloat16", warmup=True)
    runner = TransformersRunner(
        config.model,
        cache_dir=Path("/tmp/cache"),
        device=DEVICE,
        dtype="bfloat16",
        fused_forward=fused,
        speculative_tokens=0,
    )
    engine = Engine(config.model_copy(update={"max_batch_size": rows, "max_queue": 4096}), runner)
    await engine.start()
    return engine


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed_forward(runner: TransformersRunner) -> list[float]:
    """Wrap the loaded model's forward with a synchronised timer; returns the seconds list."""
    loaded = runner.loaded
    assert loaded is not None
    spent: list[float] = []
    inner = loaded.forward

    def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        sync()
        started = time.perf_counter()
        out = inner(*args, **kwargs)
        sync()
        spent.append(time.perf_counter() - started)
        return out

    loaded.forward = forward  # type: ignore[method-assign]
    return spent


async def agreement(model_dir: Path) -> None:
    texts = {}
    for fused in (False, True):
        engine = await engine_for(model_dir, fused=fused, rows=32)
        results = await asyncio.gather(
            *(_generate(engine, [request(i, 0.0, tokens=32)]) for i in range(32))
        )
        texts[fused] = [g.completions[0].text for [g] in results]
        await engine.stop()
    same = sum(a == b for a, b in zip(texts[False], texts[True], strict=True))
    # One step's logits, both forwards, the same inputs.
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).cuda().eval()
    ids = torch.randint(0, model.config.vocab_size, (8, 40), device="cuda")
    with torch.inference_mode():
        reference = model(input_ids=ids).logits[:, -1].double()
        fused_model = FusedLlama(model)
        from copygen.engine.model.kv import KVCache

        kv = KVCache()
        got = fused_model(
            kv,
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            position_ids=torch.arange(40, device="cuda")[None].expand(8, -1),
        ).double()
    error = float((got - reference).norm() / reference.norm())
    report("agreement", greedy_rows_identical=f"{same}/32", step_logits_rel_error=error)


async def engine_run(model_dir: Path, *, fused: bool, rows: int) -> None:
    engine = await engine_for(model_dir, fused=fused, rows=rows)
    runner = engine._runner  # noqa: SLF001 - the script times the runner's forward
    assert isinstance(runner, TransformersRunner)
    assert engine.info is not None
    await asyncio.gather(*(_generate(engine, [request(i, 0.7, tokens=16)]) for i in range(rows)))
    spent = timed_forward(runner)
    before = engine.snapshot().figures
    started = time.perf_counter()
    results = await asyncio.gather(
        *(_generate(engine, [request(1000 + i, 0.7)]) for i in range(rows))
    )
    wall = time.perf_counter() - started
    after = engine.snapshot().figures
    tokens = sum(c.completion_tokens for [g] in results for c in g.completions)
    report(
        "engine",
        forward=engine.info.forward,
        rows=rows,
        tokens=tokens,
        wall_s=round(wall, 3),
        tok_s=round(tokens / wall, 1),
        steps=after.steps - before.steps,
        ms_per_step=round(1000 * wall / max(1, after.steps - before.steps), 2),
        forward_share=round(sum(spent) / wall, 3),
        mean_forward_ms=round(1000 * sum(spent) / max(1, len(spent)), 2),
        max_batch_rows=after.max_batch_rows,
    )
    await engine.stop()


def runner_direct(model_dir: Path, rows: int) -> None:
    """The runner alone, stepped in a plain loop (no event loop, no model thread): where a
    step's time goes, and the top operations of a few steps by self CPU time."""
    from copygen.engine.protocols import RowSpec

    runner = TransformersRunner(
        str(model_dir),
        cache_dir=Path("/tmp/cache"),
        device=DEVICE,
        dtype="bfloat16",
        speculative_tokens=0,
    )
    runner.load()
    spent = timed_forward(runner)
    specs = [RowSpec((0, i, 0), request(2000 + i, 0.7), i) for i in range(rows)]
    runner.step(specs, ())
    steps: list[float] = []
    done: set[tuple[int, int, int]] = set()
    profile = None
    for n in range(NEW_TOKENS - 2):
        if n == 60:
            profile = torch.profiler.profile(
                activities=[
                    torch.profiler.ProfilerActivity.CPU,
                    torch.profiler.ProfilerActivity.CUDA,
                ]
            )
            profile.__enter__()
        started = time.perf_counter()
        events = runner.step((), done)
        sync()
        steps.append(time.perf_counter() - started)
        done = {e.key for e in events if e.finish_reason is not None}
        if profile is not None and n == 64:
            profile.__exit__(None, None, None)
            table = profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=18)
            (OUT / f"profile_{rows}.txt").write_text(table)
            print(table, flush=True)
            profile = None
    if rows >= 256:
        python_profile(runner, done)
    middle = sorted(steps[10:-10])
    forwards = sorted(spent[11:-10])
    report(
        "runner_direct",
        rows=rows,
        median_step_ms=round(1000 * middle[len(middle) // 2], 2),
        median_forward_ms=round(1000 * forwards[len(forwards) // 2], 2),
    )


def python_profile(runner: TransformersRunner, done: set[tuple[int, int, int]]) -> None:
    """cProfile of 20 more steps (the rows of the last test restart if they finished): where
    the Python time of a step goes, top functions by own time, in OUT/python_profile.txt."""
    import cProfile
    import io
    import pstats

    from copygen.engine.protocols import RowSpec

    specs = [RowSpec((1, i, 0), request(3000 + i, 0.7), i) for i in range(256)]
    runner.step(specs, done)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(20):
        runner.step((), ())
    sync()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    (OUT / "python_profile.txt").write_text(text.getvalue())
    print(text.getvalue()[:6000], flush=True)


class StaticLayer:
    """A fixed-capacity KV layer written at one position tensor: capturable in a graph."""

    def __init__(self, rows: int, heads: int, capacity: int, dim: int, at: torch.Tensor) -> None:
        shape = (rows, heads, capacity, dim)
        self.keys = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
        self.values = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
        self.at = at

    def update(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.keys.index_copy_(2, self.at, keys)
        self.values.index_copy_(2, self.at, values)
        return self.keys, self.values


class StaticKV:
    def __init__(self, layers: list[StaticLayer]) -> None:
        self.layers = layers

    def layers_for(self, count: int) -> list[StaticLayer]:
        return self.layers[:count]


def median_ms(run: Any, repeats: int = 50) -> float:
    for _ in range(5):
        run()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def graph_ceiling(model_dir: Path, rows: int = 256, capacity: int = 256) -> None:
    from copygen.engine.model.sampler import RowSampler  # noqa: F401 - present for the record

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).cuda().eval()
    config = model.config
    fused = FusedLlama(model)
    at = torch.tensor([capacity - 1], device="cuda")
    kv = StaticKV(
        [
            StaticLayer(rows, config.num_key_value_heads, capacity, fused.head_dim, at)
            for _ in range(config.num_hidden_layers)
        ]
    )
    ids = torch.randint(0, config.vocab_size, (rows, 1), device="cuda")
    mask = torch.ones(rows, capacity, device="cuda", dtype=torch.long)
    positions = torch.full((rows, 1), capacity - 1, device="cuda")

    def step() -> torch.Tensor:
        return fused(kv, input_ids=ids, attention_mask=mask, position_ids=positions)

    with torch.inference_mode():
        eager = median_ms(step)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits = step()
        graphed = median_ms(graph.replay)
        sample_input = logits.float()

        def sample() -> torch.Tensor:
            probs = torch.softmax(sample_input / 0.7, dim=-1)
            top, index = probs.topk(50, dim=-1)
            keep = top.cumsum(-1) - top < 0.9
            top = top * keep
            choice = torch.multinomial(top, 1)
            return index.gather(1, choice)

        sampled = median_ms(sample)
    report(
        "graph",
        rows=rows,
        kv_positions=capacity,
        eager_step_ms=round(eager, 3),
        graph_step_ms=round(graphed, 3),
        graph_tok_s_ceiling=round(rows / (graphed / 1000), 0),
        eager_tok_s_ceiling=round(rows / (eager / 1000), 0),
        sampler_ms=round(sampled, 3),
    )


async def main() -> None:
    model_dir = build_model(Path("/tmp/smollm2-random"))
    if DEVICE == "cpu":
        if os.environ.get("GPU_BENCH_PART") == "diagnose":
            runner_direct(model_dir, 4)
            return
        for fused in (False, True):
            await engine_run(model_dir, fused=fused, rows=4)
        return
    report(
        "device",
        name=torch.cuda.get_device_name(0),
        torch=torch.__version__,
        total_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
    )
    if os.environ.get("GPU_BENCH_PART") == "diagnose":
        for rows in (64, 256):
            runner_direct(model_dir, rows)
        return
    graph_ceiling(model_dir)
    await agreement(model_dir)
    for rows in (64, 256):
        for fused in (False, True):
            await engine_run(model_dir, fused=fused, rows=rows)
    graph_ceiling(model_dir, rows=64)


if __name__ == "__main__":
    asyncio.run(main())
