"""Where a decoding step goes on this CPU (issue 31, item 2): the embedded model's runner
stepped in a plain loop at 6, 48 and 96 rows (copy-like prompts, sampled at t=0.7), the median
step and forward-pass times, tokens per second, and the top operations of five steps by self
CPU time — once per CPU path the machine has (oneDNN with AMX, and with
``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``, where the CPU has AMX; each path in a process of its
own, since oneDNN reads the variable once). Writes docs/step-profile.md.

    python bench/step_profile.py            # every path, write the doc
    python bench/step_profile.py --child    # one path in this process: JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ROWS = (6, 48, 96)
STEPS = 40
PROFILED = 5


def child() -> None:
    import torch

    from copygen.config import Settings
    from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
    from copygen.engine.model.runner import TransformersRunner
    from copygen.engine.protocols import RowSpec

    runner = TransformersRunner.of(Settings())
    info = runner.load()
    loaded = runner.loaded
    assert loaded is not None
    spent: list[float] = []
    inner = loaded.forward

    def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        started = time.perf_counter()
        out = inner(*args, **kwargs)
        spent.append(time.perf_counter() - started)
        return out

    loaded.forward = forward  # type: ignore[method-assign]
    results = []
    for rows in ROWS:
        specs = [
            RowSpec(
                (rows, i, 0),
                GenerationRequest(
                    messages=(
                        ChatMessage(
                            "user",
                            f"Write one SMS marketing message for product number {i}: a solar "
                            "phone charger for hikers. Facts: charges a phone in two hours.",
                        ),
                    ),
                    # Long enough that no row ends during the measured steps.
                    sampling=SamplingParams(max_new_tokens=STEPS + 20, seed=i),
                ),
                i,
            )
            for i in range(rows)
        ]
        runner.step(specs, ())  # the prefill, not measured
        spent.clear()
        steps: list[float] = []
        profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        for n in range(STEPS):
            if n == STEPS - PROFILED:
                profile.__enter__()
            started = time.perf_counter()
            runner.step((), ())
            steps.append(time.perf_counter() - started)
        profile.__exit__(None, None, None)
        events = sorted(profile.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1
        top = [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3)} for e in events[:8]]
        runner.step((), {spec.key for spec in specs})  # the rows end
        measured = steps[5 : STEPS - PROFILED]
        forwards = spent[5 : STEPS - PROFILED]
        step_ms = 1000 * statistics.median(measured)
        results.append(
            {
                "rows": rows,
                "step_ms": round(step_ms, 2),
                "forward_ms": round(1000 * statistics.median(forwards), 2),
                "row_steps_s": round(rows / (step_ms / 1000), 1),
                "top": top,
            }
        )
    print(json.dumps({"forward": info.forward, "threads": torch.get_num_threads(),
                      "results": results}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--out", default="docs/step-profile.md")
    args = parser.parse_args()
    if args.child:
        child()
        return
    from common import cpu_name, cpu_paths

    lines = [
        "# Where a decoding step goes",
        "",
        f"Measured by `bench/step_profile.py` on {time.strftime('%Y-%m-%d')}: {cpu_name()}, "
        f"{os.cpu_count()} cores. The embedded model's runner (default settings: bf16, "
        "copygen's fused forward, speculation on) stepped in a plain loop, no server: a "
        f"prefill of N short copy prompts, then {STEPS} decoding steps at t=0.7; the median "
        f"step and forward time of steps 6–{STEPS - PROFILED}, and the top operations by self "
        f"CPU time over the last {PROFILED}.",
    ]
    for path in cpu_paths():
        out = subprocess.run(
            [sys.executable, __file__, "--child"],
            env={**os.environ, "COPYGEN_LOG_LEVEL": "warning", **path.env},
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        found = json.loads(out.stdout.strip().splitlines()[-1])
        lines += [
            "",
            f"## {path.name}",
            "",
            f"Forward: {found['forward']}, {found['threads']} threads; env "
            f"`{' '.join(f'{k}={v}' for k, v in path.env.items()) or 'default'}`.",
            "",
            "| rows | step ms | forward ms | forward share | row-steps/s "
            "| top operations (self CPU) |",
            "|---|---|---|---|---|---|",
        ]
        for r in found["results"]:
            ops = ", ".join(f"{t['op']} {t['share']:.0%}" for t in r["top"][:5])
            lines.append(
                f"| {r['rows']} | {r['step_ms']:.1f} | {r['forward_ms']:.1f} | "
                f"{r['forward_ms'] / r['step_ms']:.0%} | {r['row_steps_s']:.0f} | {ops} |"
            )
    out_path = Path(args.out)
    out_path.write_text("\n".join(lines) + "\n" + hand_written(out_path))
    print("\n".join(lines))


#: Where the hand-written findings start in the page; a rerun keeps them.
HAND_WRITTEN = "### What it says"


def hand_written(page: Path) -> str:
    """The page's hand-written sections (from the first ``HAND_WRITTEN`` heading on), blank
    line first; empty for a new page."""
    text = page.read_text() if page.exists() else ""
    start = text.find(HAND_WRITTEN)
    return "" if start < 0 else "\n" + text[start:]


if __name__ == "__main__":
    main()
