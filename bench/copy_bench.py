"""The product's own workload: `POST /v1/copy` with a fixed set of varied briefs (3 variants,
default sampling, cache bypassed, distinct seeds) at 1, 4 and 16 concurrent users, closed loop,
against a real `copygen serve` with default settings. Writes docs/copy-benchmarks.md.

What it reports per level: briefs/s, p50/p95 latency, requested variants delivered, returned
variants within their channel's hard limit (counted here, independently), rounds per brief;
then the server's peak RSS (VmHWM) after the load and its RSS a while later.
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
from common import Server, free_port

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


async def run_level(url: str, users: int, total: int, pool: list[dict[str, object]]) -> Level:
    """``total`` briefs, the pool's first ones in order (every level sees the same mix), shared
    out to ``users`` closed-loop clients."""
    level = Level(users)
    queue = iter(list(itertools.islice(itertools.cycle(pool), total)))
    started = time.perf_counter()

    async def user(client: httpx.AsyncClient) -> None:
        for brief in queue:
            began = time.perf_counter()
            response = await client.post(f"{url}/v1/copy", json=brief)
            if response.status_code != 200:
                level.errors += 1
                continue
            level.latencies.append(time.perf_counter() - began)
            body = response.json()
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
        before = await token_counters(client, url)
        await asyncio.gather(*(user(client) for _ in range(users)))
        after = await token_counters(client, url)
    level.wall_s = time.perf_counter() - started
    level.decoded = after[0] - before[0]
    level.prefilled = after[1] - before[1]
    return level


async def token_counters(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    """The server's (generated, prompt) token counters from /metrics."""
    text = (await client.get(f"{url}/metrics")).text
    found = {"copygen_generated_tokens_total": 0.0, "copygen_prompt_tokens_total": 0.0}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in found:
            found[name] = float(value)
    return found["copygen_generated_tokens_total"], found["copygen_prompt_tokens_total"]


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024)


def report(
    levels: list[Level], rss: dict[str, tuple[float, float]], idle_s: float, per_user: int
) -> str:
    lines = [
        "# The copy workload: `POST /v1/copy`",
        "",
        f"Measured by `make bench` (`bench/copy_bench.py`) on {time.strftime('%Y-%m-%d')}: "
        f"{platform.machine()}, {os.cpu_count()} CPUs, a real `copygen serve` with default "
        "settings (the embedded model, bf16, `grounding: strict`). A fixed set of 24 briefs "
        f"({len(CHANNEL_SET)} channels × {len(PRODUCTS)} products, one fact each, tones "
        "rotated), 3 variants, default sampling, cache bypassed, distinct seeds. Each level "
        f"sends the briefs in order from closed-loop users, all 24 and at least {per_user} per "
        "user (the set repeats, same seeds): "
        + ", ".join(f"{len(level.latencies) + level.errors} at {level.users}" for level in levels)
        + ". With only a few briefs per user, a level's rate is mostly its ramp-up and its "
        "last, slowest briefs.",
        "",
        "| users | briefs/s | p50 s | p95 s | p99 s | delivered | hard-limit fit | rounds | "
        "decoded tok/brief | prefilled tok/brief | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        lat = sorted(level.latencies) or [0.0]
        briefs_done = max(1, len(level.latencies) + level.errors)
        lines.append(
            f"| {level.users} | {len(level.latencies) / level.wall_s:.2f} | "
            f"{statistics.median(lat):.2f} | {percentile(lat, 0.95):.2f} | "
            f"{percentile(lat, 0.99):.2f} | "
            f"{level.delivered / max(1, level.requested):.1%} | "
            f"{level.hard_fit / max(1, level.hard):.1%} | "
            f"{statistics.mean(level.rounds or [0]):.2f} | "
            f"{level.decoded / briefs_done:.0f} | {level.prefilled / briefs_done:.0f} | "
            f"{level.errors} |"
        )
    _, warm = rss["warm"]
    hwm, after = rss["load"]
    _, later = rss["later"]
    lines += [
        "",
        f"Server memory: RSS {warm:.0f} MiB after a two-brief warm-up; peak RSS (VmHWM) "
        f"{hwm:.0f} MiB during the load; RSS {after:.0f} MiB right after it and {later:.0f} "
        f"MiB {idle_s:g} s later ({later / warm - 1:+.0%} against the warm-up).",
        "",
        "The speed issue's targets for this table: ≥ 5x the briefs/s measured before it at 16 "
        "users (0.41), p50 ≤ 8 s at 16 users and ≤ 1.5 s at 1 user, RSS ≤ 1 GiB after the "
        "load and within 10% of the warm-up's a minute later.",
        "",
    ]
    return "\n".join(lines)


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
    args = parser.parse_args()
    port = free_port()
    server = Server(
        "copygen-copy",
        [sys.executable, "-m", "copygen", "serve", "--port", str(port)],
        {"COPYGEN_LOG_LEVEL": "warning", **dict(i.split("=", 1) for i in args.copygen_env)},
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
        for users in (int(x) for x in args.levels.split(",")):
            total = max(len(pool), args.per_user * users)
            levels.append(asyncio.run(run_level(server.url, users, total, pool)))
            print(f"{users} users done", flush=True)
        rss["load"] = rss_mib(server.process.pid)
        time.sleep(args.idle_s)
        rss["later"] = rss_mib(server.process.pid)
    finally:
        server.stop()
    text = report(levels, rss, args.idle_s, args.per_user)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
