"""One prepared check of the CUDA path, run on a lent GPU machine (not in CI).

The embedded model's weights are too large to travel to the device machine, so this builds
SmolLM2-135M's exact architecture and tokenizer (config files copied into .gpu/model) with
random weights: speeds, dtypes, batching and memory behaviour are the real model's, the text
is noise. Checks, each printed as one JSON line:

1. load in float16 and bfloat16 ("auto" too), 64 concurrent requests through the engine
   (continuous batching), forward passes per request, tok/s;
2. streaming events arrive and join up to the final text;
3. real CUDA out-of-memory: with the process capped to a small share of GPU memory, a large
   batch of long prompts OOMs, the scheduler splits it, every request still succeeds;
4. repeated device failure: with memory capped below what one row needs, rows fail, the model
   breaker opens, and with COPYGEN_DEVICE_FALLBACK the model moves to the CPU and serves.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from copygen.config import Settings
from copygen.deadline import Deadline
from copygen.domain import ChatMessage, Generation, GenerationRequest, SamplingParams
from copygen.engine.engine import Engine
from copygen.engine.model.runner import TransformersRunner
from copygen.errors import CopygenError


async def _generate(engine: Engine, requests: list[GenerationRequest]) -> list[Generation]:
    """Generate ``requests`` as one job within a minute."""
    return (await engine.run(requests, Deadline.within(60))).generations


MODEL_FILES = Path(".gpu/model")
#: "cpu" gives a quick local smoke run of the script itself (throughput only).
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp")


def report(check: str, **figures: object) -> None:
    line = json.dumps({"check": check, **figures}, default=str)
    print(line, flush=True)
    with (OUT / "gpu_check.jsonl").open("a") as out:
        out.write(line + "\n")


def build_model(target: Path) -> Path:
    config = AutoConfig.from_pretrained(MODEL_FILES)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    for file in MODEL_FILES.iterdir():
        if file.name != "config.json":
            (target / file.name).write_bytes(file.read_bytes())
    return target


def request(i: int, tokens: int = 48, words: int = 8) -> GenerationRequest:
    prompt = f"Write a short catchy headline for product {i}. " + "context " * words
    return GenerationRequest(
        messages=(ChatMessage("user", prompt),),
        sampling=SamplingParams(temperature=0.0, max_new_tokens=tokens),
    )


async def engine_for(model_dir: Path, **settings: object) -> Engine:
    config = Settings(model=str(model_dir), device=DEVICE, warmup=True, **settings)  # type: ignore[arg-type]
    runner = TransformersRunner(
        config.model, cache_dir=Path("/tmp/cache"), device=DEVICE, dtype=config.dtype
    )
    engine = Engine(config, runner)
    await engine.start()
    return engine


async def throughput(model_dir: Path, dtype: str) -> None:
    engine = await engine_for(model_dir, dtype=dtype, max_batch_size=64)
    assert engine.info is not None
    before = engine.snapshot().figures.forward_passes
    started = time.perf_counter()
    results = await asyncio.gather(*(_generate(engine, [request(i)]) for i in range(64)))
    wall = time.perf_counter() - started
    tokens = sum(c.completion_tokens for [g] in results for c in g.completions)
    passes = engine.snapshot().figures.forward_passes - before
    report(
        "throughput",
        dtype_requested=dtype,
        device=engine.info.device,
        dtype=engine.info.dtype,
        load_s=engine.info.load_seconds,
        requests=64,
        wall_s=round(wall, 3),
        tok_s=round(tokens / wall, 1),
        forward_passes_per_request=round(passes / 64, 3),
        max_batch_rows=engine.snapshot().figures.max_batch_rows,
        memory_allocated_mib=round(torch.cuda.memory_allocated() / 2**20, 1)
        if DEVICE == "cuda"
        else None,
    )
    if dtype == "bfloat16":
        stream = engine.open_stream([request(999)])
        deltas = [event.delta async for event in stream.events()]
        [generation] = stream.job.generations()
        report(
            "stream",
            events=len(deltas),
            joined_equals_text="".join(deltas) == generation.completions[0].text,
        )
    await engine.stop()


async def out_of_memory_split(model_dir: Path) -> None:
    engine = await engine_for(model_dir, dtype="bfloat16", max_batch_size=256)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = (torch.cuda.memory_allocated() + 1.5 * 2**30) / total  # ~1.5 GiB of headroom
    torch.cuda.set_per_process_memory_fraction(cap)
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(_generate(engine, [request(i, tokens=32, words=300)]) for i in range(256)),
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    stats = engine.snapshot().figures
    report(
        "oom_split",
        memory_cap_gib=round(cap * total / 2**30, 2),
        requests=256,
        succeeded=256 - len(failed),
        failed=[type(f).__name__ for f in failed][:5],
        oom_splits=stats.oom_splits,
        oom_failures=stats.oom_failures,
        batch_ceiling=stats.batch_ceiling,
        max_batch_rows=stats.max_batch_rows,
        wall_s=round(time.perf_counter() - started, 2),
        breaker=engine.gate.breaker.state.value,
    )
    await engine.stop()
    torch.cuda.set_per_process_memory_fraction(1.0)


async def fallback_to_cpu(model_dir: Path) -> None:
    engine = await engine_for(model_dir, dtype="bfloat16", breaker_failures=2, device_fallback=True)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_allocated() + 2**20) / total)
    errors = []
    for i in range(3):
        try:
            await _generate(engine, [request(i, tokens=16, words=2000)])
        except CopygenError as exc:
            errors.append(exc.type)
    for _ in range(100):
        if engine.degraded_to_cpu:
            break
        await asyncio.sleep(0.05)
    torch.cuda.set_per_process_memory_fraction(1.0)
    after = None
    try:
        [generation] = await _generate(engine, [request(7, tokens=8)])
        after = generation.completions[0].completion_tokens
    except CopygenError as exc:
        after = exc.type
    assert engine.info is not None
    report(
        "fallback",
        errors=errors,
        degraded_to_cpu=engine.degraded_to_cpu,
        device_now=engine.info.device,
        dtype_now=engine.info.dtype,
        tokens_after=after,
        breaker=engine.gate.breaker.state.value,
        oom_failures=engine.snapshot().figures.oom_failures,
    )
    await engine.stop()


async def main() -> None:
    if DEVICE == "cpu":
        await throughput(build_model(Path("/tmp/smollm2-random")), "bfloat16")
        return
    report(
        "device",
        name=torch.cuda.get_device_name(0),
        torch=torch.__version__,
        total_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
    )
    model_dir = build_model(Path("/tmp/smollm2-random"))
    for dtype in ("auto", "float16", "bfloat16"):
        await throughput(model_dir, dtype)
    await out_of_memory_split(model_dir)
    await fallback_to_cpu(model_dir)


if __name__ == "__main__":
    asyncio.run(main())
