"""The product's own workload: `POST /v1/copy` with a fixed set of varied briefs (3 variants,
default sampling, cache bypassed, distinct seeds) at 1, 4 and 16 concurrent users, closed loop,
against a real `copygen serve` with default settings. Writes docs/copy-benchmarks.md.

What it reports per level: briefs/s, p50/p95/p99 latency, requested variants delivered,
returned variants within their channel's hard limit (counted here, independently), rounds and
decoded/prefilled tokens per brief; then the server's peak RSS (VmHWM) after the load and its
RSS a while later.

Next to it, the same briefs as what a user without copygen runs: llama.cpp's `llama-server` on
the same weights, one plain chat request per brief asking for 3 variants (sampled, t=0.7,
nothing checked), the same closed loop and levels. Both on every CPU path the machine has:
oneDNN with and without AMX for copygen (`ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`), llama.cpp
built natively and with AMX off — on a CPU without AMX the two are the same path, measured once.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import CpuPath, Server, cpu_name, cpu_paths, free_port

from copygen.copywriting.channels import CHANNELS

PRODUCTS = (
    ("Solar-powered phone charger", "hikers", ["charges a phone in two hours of sunlight"]),
    ("Cold brew coffee subscription", "busy parents", ["cancel any time"]),
    ("Noise-cancelling headphones", "commuters", ["40-hour battery"]),
    ("Online Spanish lessons", "beginners", ["25-minute lessons"]),
)
CHANNEL_SET = (
    "google_ads_headline", "google_ads_description", "sms", "email_subject", "meta_primary_text",
    "x_post",
)  # fmt: skip
TONES = ("friendly", "bold", "playful", "professional")


def briefs() -> list[dict[str, object]]:
    """24 briefs: every channel of the set with every product, tones rotated, distinct seeds."""
    result = []
    tones = itertools.cycle(TONES)
    pairs = itertools.product(CHANNEL_SET, PRODUCTS)
    for seed, (channel, (product, audience, facts)) in enumerate(pairs, start=100):
        result.append(
            {
                "product": product,
                "audience": audience,
                "facts": facts,
                "channel": channel,
                "tone": next(tones),
                "variants": 3,
                "seed": seed,
                "cache": "bypass",
            }
        )
    return result


@dataclass
class Level:
    users: int
    wall_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    requested: int = 0
    delivered: int = 0
    hard: int = 0
    hard_fit: int = 0
    rounds: list[int] = field(default_factory=list)
    errors: int = 0
    #: Tokens the server decoded and prefilled during the level (every row, dropped ones too).
    decoded: float = 0.0
    prefilled: float = 0.0


def plain_request(brief: dict[str, object]) -> dict[str, object]:
    """The chat request a user without copygen writes for ``brief``: one plain prompt asking
    for all the variants at once, sampled, with a generous token cap."""
    channel = CHANNELS[str(brief["channel"])]
    facts = "; ".join(str(fact) for fact in brief["facts"])  # type: ignore[attr-defined]
    prompt = (
        f"Write {brief['variants']} different {channel.name} variants for {brief['product']}, "
        f"aimed at {brief['audience']}. Facts: {facts}. Tone: {brief['tone']}."
    )
    return {
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.7,
        "max_tokens": 256,
        "seed": brief["seed"],
    }


async def run_level(
    url: str, users: int, total: int, pool: list[dict[str, object]], plain: bool = False
) -> Level:
    """``total`` briefs, the pool's first ones in order (every level sees the same mix), shared
    out to ``users`` closed-loop clients. ``plain``: each brief as one plain chat request to an
    OpenAI-compatible server (the peer) instead of ``/v1/copy``."""
    level = Level(users)
    queue = iter(list(itertools.islice(itertools.cycle(pool), total)))
    started = time.perf_counter()

    async def user(client: httpx.AsyncClient) -> None:
        for brief in queue:
            began = time.perf_counter()
            if plain:
                response = await client.post(
                    f"{url}/v1/chat/completions", json=plain_request(brief)
                )
            else:
                response = await client.post(f"{url}/v1/copy", json=brief)
            if response.status_code != 200:
                level.errors += 1
                continue
            level.latencies.append(time.perf_counter() - began)
            body = response.json()
            if plain:
                level.decoded += float(body["usage"]["completion_tokens"])
                level.prefilled += float(body["usage"]["prompt_tokens"])
                continue
            level.requested += int(body["requested"])
            level.delivered += int(body["delivered"])
            level.rounds.append(int(body["rounds"]))
            channel = CHANNELS[str(brief["channel"])]
            for variant in body["variants"]:
                if channel.kind == "hard":
                    level.hard += 1
                    measure = channel.measure(variant["text"])
                    level.hard_fit += measure.limit is None or measure.units <= measure.limit

    async with httpx.AsyncClient(timeout=600) as client:
        before = (0.0, 0.0) if plain else await token_counters(client, url)
        await asyncio.gather(*(user(client) for _ in range(users)))
        after = (0.0, 0.0) if plain else await token_counters(client, url)
    level.wall_s = time.perf_counter() - started
    level.decoded += after[0] - before[0]
    level.prefilled += after[1] - before[1]
    return level


async def token_counters(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    """The server's generated tokens and the prompt tokens it prefilled (its prompt tokens
    less those whose KV came from stored prefixes), from /metrics."""
    text = (await client.get(f"{url}/metrics")).text
    found = {
        "copygen_generated_tokens_total": 0.0,
        "copygen_prompt_tokens_total": 0.0,
        "copygen_prompt_tokens_reused_total": 0.0,
    }
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = float(value)
    prefilled = found["copygen_prompt_tokens_total"] - found["copygen_prompt_tokens_reused_total"]
    return found["copygen_generated_tokens_total"], prefilled


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024)


def level_row(level: Level) -> dict[str, float]:
    lat = sorted(level.latencies) or [0.0]
    briefs_done = max(1, len(level.latencies) + level.errors)
    return {
        "briefs_s": len(level.latencies) / level.wall_s,
        "p50": statistics.median(lat),
        "p95": percentile(lat, 0.95),
        "p99": percentile(lat, 0.99),
        "decoded": level.decoded / briefs_done,
        "prefilled": level.prefilled / briefs_done,
    }


def report(
    runs: list[tuple[CpuPath, list[Level], list[Level], dict[str, tuple[float, float]]]],
    idle_s: float,
    per_user: int,
) -> str:
    first = runs[0][1]
    lines = [
        "# The copy workload: `POST /v1/copy`",
        "",
        f"Measured by `make bench` (`bench/copy_bench.py`) on {time.strftime('%Y-%m-%d')}: "
        f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs, a real `copygen serve` "
        "with default settings (the embedded model, bf16, `grounding: strict`). A fixed set of "
        f"24 briefs ({len(CHANNEL_SET)} channels × {len(PRODUCTS)} products, one fact each, "
        "tones rotated), 3 variants, default sampling, cache bypassed, distinct seeds. Each "
        f"level sends the briefs in order from closed-loop users, all 24 and at least "
        f"{per_user} per user (the set repeats, same seeds): "
        + ", ".join(f"{len(level.latencies) + level.errors} at {level.users}" for level in first)
        + ". With only a few briefs per user, a level's rate is mostly its ramp-up and its "
        "last, slowest briefs.",
        "",
        "**The peer** is what a user without copygen runs: llama.cpp's `llama-server` on the "
        "same weights (BF16 GGUF), each brief as one plain chat request asking for 3 variants "
        '("Write 3 different Google Ads headline variants for …, aimed at …. Facts: …. Tone: '
        '…."), t=0.7, max_tokens 256, nothing checked: its variants may be labels, preambles '
        "or over the limit (docs/quality.md measures what an editor keeps of each). Each server "
        "runs alone. Decoded and prefilled tokens per brief count every row copygen ran, "
        "dropped ones and later rounds included (its /metrics counters; prefilled: the prompt "
        "tokens that ran, not those whose KV came from a stored conversation prefix or the "
        "brief's earlier round), and the peer's usage (its whole prompt).",
        "",
        f"CPU paths on this machine: {', '.join(path.name for path in cpu_paths())}.",
    ]
    for path, levels, peer, rss in runs:
        lines += [
            "",
            f"## {path.name}",
            "",
            f"copygen env: `{' '.join(f'{k}={v}' for k, v in path.env.items()) or 'default'}`; "
            f"llama.cpp build: `{path.llama_build}`.",
            "",
            "| users | briefs/s | p50 s | p95 s | p99 s | delivered | hard-limit fit | rounds | "
            "decoded tok/brief | prefilled tok/brief | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for level in levels:
            row = level_row(level)
            lines.append(
                f"| {level.users} | {row['briefs_s']:.2f} | {row['p50']:.2f} | "
                f"{row['p95']:.2f} | {row['p99']:.2f} | "
                f"{level.delivered / max(1, level.requested):.1%} | "
                f"{level.hard_fit / max(1, level.hard):.1%} | "
                f"{statistics.mean(level.rounds or [0]):.2f} | "
                f"{row['decoded']:.0f} | {row['prefilled']:.0f} | {level.errors} |"
            )
        if not peer:  # --no-peer: nothing to compare with
            lines += ["", "The peer was not measured in this run (`--no-peer`)."]
        else:
            lines += [
                "",
                "Side by side with the peer "
                "(ratio = copygen / peer briefs/s; p95/p50 is the tail):",
                "",
                "| users | copygen briefs/s | peer briefs/s | **ratio** | copygen p50 / p95 s | "
                "peer p50 / p95 s | copygen p95/p50 | "
                "peer decoded / prefilled tok/brief | errors |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
        for mine, theirs in zip(levels, peer, strict=bool(peer)):
            m, t = level_row(mine), level_row(theirs)
            lines.append(
                f"| {mine.users} | {m['briefs_s']:.2f} | {t['briefs_s']:.2f} | "
                f"**{m['briefs_s'] / max(t['briefs_s'], 1e-9):.2f}x** | "
                f"{m['p50']:.2f} / {m['p95']:.2f} | {t['p50']:.2f} / {t['p95']:.2f} | "
                f"{m['p95'] / max(m['p50'], 1e-9):.1f}x | "
                f"{t['decoded']:.0f} / {t['prefilled']:.0f} | {theirs.errors} |"
            )
        _, warm = rss["warm"]
        hwm, after = rss["load"]
        _, later = rss["later"]
        lines += [
            "",
            f"copygen's memory: RSS {warm:.0f} MiB after a two-brief warm-up; peak RSS (VmHWM) "
            f"{hwm:.0f} MiB during the load; RSS {after:.0f} MiB right after it and "
            f"{later:.0f} MiB {idle_s:g} s later ({later / warm - 1:+.0%} against the "
            "warm-up).",
        ]
    lines += [
        "",
        "The speed issue's targets for this table: at 16 users and at 1 user ≥ 1.5x the "
        "peer's briefs/s on every CPU path, p95 ≤ 2x p50 at 16 users, 1-user p50 ≤ 1.2 s; "
        "RSS ≤ 1 GiB after the load and within 10% of the warm-up's a minute later.",
        "",
    ]
    return "\n".join(lines)


def run_copygen(
    path: CpuPath, extra_env: dict[str, str], level_users: list[int], per_user: int, idle_s: float
) -> tuple[list[Level], dict[str, tuple[float, float]]]:
    port = free_port()
    server = Server(
        "copygen-copy",
        [sys.executable, "-m", "copygen", "serve", "--port", str(port)],
        {"COPYGEN_LOG_LEVEL": "warning", **path.env, **extra_env},
        port,
    )
    try:
        server.wait_ready("/health/ready")
        pool = briefs()
        # Warm-up: two briefs the levels do not send (other seeds), then the baseline RSS.
        warm = [dict(brief, seed=int(str(brief["seed"])) + 10_000) for brief in pool[:2]]
        asyncio.run(run_level(server.url, 1, len(warm), warm))
        rss = {"warm": rss_mib(server.process.pid)}
        levels = []
        for users in level_users:
            total = max(len(pool), per_user * users)
            levels.append(asyncio.run(run_level(server.url, users, total, pool)))
            print(f"{path.name}: copygen, {users} users done", flush=True)
        rss["load"] = rss_mib(server.process.pid)
        time.sleep(idle_s)
        rss["later"] = rss_mib(server.process.pid)
    finally:
        server.stop()
    return levels, rss


def run_peer(path: CpuPath, level_users: list[int], per_user: int) -> list[Level]:
    from llama_bench import bf16_gguf, build_llama_server, llama_server

    bin_dir = build_llama_server(path.llama_build)
    server = llama_server(bin_dir, bf16_gguf(bin_dir))
    try:
        server.wait_ready("/health")
        pool = briefs()
        warm = [dict(brief, seed=int(str(brief["seed"])) + 10_000) for brief in pool[:2]]
        asyncio.run(run_level(server.url, 1, len(warm), warm, plain=True))
        levels = []
        for users in level_users:
            total = max(len(pool), per_user * users)
            levels.append(asyncio.run(run_level(server.url, users, total, pool, plain=True)))
            print(f"{path.name}: llama-server, {users} users done", flush=True)
    finally:
        server.stop()
    return levels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--out", default="docs/copy-benchmarks.md")
    parser.add_argument(
        "--copygen-env", action="append", default=[], help="KEY=VALUE for the copygen server"
    )
    parser.add_argument("--idle-s", type=float, default=60.0, help="wait before the last RSS")
    parser.add_argument(
        "--per-user", type=int, default=4, help="briefs per user at least (all 24 at any level)"
    )
    parser.add_argument("--no-peer", action="store_true", help="copygen only (no llama-server)")
    args = parser.parse_args()
    level_users = [int(x) for x in args.levels.split(",")]
    extra_env = dict(i.split("=", 1) for i in args.copygen_env)
    runs = []
    for path in cpu_paths():
        levels, rss = run_copygen(path, extra_env, level_users, args.per_user, args.idle_s)
        peer = [] if args.no_peer else run_peer(path, level_users, args.per_user)
        runs.append((path, levels, peer, rss))
    text = report(runs, args.idle_s, args.per_user)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
