"""`make bench` (cache part): writes docs/cache-benchmarks.md.

1. Hit rate of L1 with TinyLFU admission against plain LRU on Zipf-distributed replays.
2. The cached /v1/copy path against a bare FastAPI route under wrk (64 connections), with a
   real Redis as L2, in the same run, alternating servers; medians of the rounds.
3. One cache hit against one generation of the same brief (serial requests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import Server, free_port

from copygen.cache.l1 import L1Cache
from copygen.domain import CopyResult

BRIEF = {"product": "solar charger", "channel": "google_ads_headline", "variants": 3, "seed": 7}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""

# --- 1. admission against LRU on Zipf replays -----------------------------------------------


def zipf_replay(keys: int, capacity: int, requests: int, s: float, one_off_share: float,
                admission: bool, seed: int = 1) -> float:  # fmt: skip
    """Hit rate of an L1 of ``capacity`` entries over a Zipf(s) stream of ``keys`` briefs,
    with a share of one-off briefs mixed in (the long tail every real service sees)."""
    rnd = random.Random(seed)
    weights = [1 / (rank**s) for rank in range(1, keys + 1)]
    stream = rnd.choices(range(keys), weights=weights, k=requests)
    l1 = L1Cache(capacity, 1 << 40, ttl_s=float("inf"), admission=admission)
    value = CopyResult("x", "m", "sms", [], 1)
    hits = 0
    one_off = 0
    for key_index in stream:
        if rnd.random() < one_off_share:
            key = f"one-off-{one_off}"
            one_off += 1
        else:
            key = f"brief-{key_index}"
        if l1.get(key) is not None:
            hits += 1
        else:
            l1.set(key, value, 1)
    return hits / requests


def admission_table() -> list[str]:
    rows = [
        "| workload | L1 entries | plain LRU hit rate | TinyLFU admission hit rate | gain |",
        "|---|---|---|---|---|",
    ]
    for s, one_off, capacity in (
        (0.8, 0.0, 500),
        (0.8, 0.3, 500),
        (1.0, 0.3, 200),
        (1.2, 0.5, 100),
    ):
        lru = zipf_replay(20_000, capacity, 200_000, s, one_off, admission=False)
        lfu = zipf_replay(20_000, capacity, 200_000, s, one_off, admission=True)
        rows.append(
            f"| Zipf s={s}, {one_off:.0%} one-off briefs, 20k briefs, 200k requests "
            f"| {capacity} | {lru:.1%} | {lfu:.1%} | {lfu / lru:.2f}x |"
        )
    return rows


# --- 2. the hit path under wrk --------------------------------------------------------------


def wrk(url: str, script: Path, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-s", str(script), url + "/v1/copy"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    req_s = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    return {"req_s": req_s, "p50_ms": p50, "p99_ms": p99, "non_2xx": errors}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def serial_latency_ms(url: str, body: dict[str, object], n: int) -> float:
    times = []
    with httpx.Client(base_url=url, timeout=300) as client:
        for _ in range(n):
            started = time.perf_counter()
            client.post("/v1/copy", json=body).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="per wrk round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/cache-benchmarks.md"))
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install -y {tool}")

    print("admission vs LRU on Zipf replays ...", flush=True)
    admission = admission_table()

    workdir = Path(tempfile.mkdtemp(prefix="copygen-bench-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    port, bare_port = free_port(), free_port()
    ours = Server(
        "copygen-cache",
        [sys.executable, "-m", "copygen", "serve", "--port", str(port)],
        {"COPYGEN_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"},  # defaults: info logs
        port,
    )
    bare = Server(
        "bare-fastapi", [sys.executable, "bench/bare_app.py", str(bare_port)], {}, bare_port
    )
    try:
        ours.wait_ready("/health/ready")
        bare.wait_ready("/docs")
        generation_ms = serial_latency_ms(ours.url, {**BRIEF, "cache": "bypass"}, 3)
        serial_latency_ms(ours.url, BRIEF, 1)  # fill the cache
        hit_ms = serial_latency_ms(ours.url, BRIEF, 200)
        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=json.dumps(BRIEF)))
        bare_script = workdir / "bare.lua"
        bare_script.write_text(WRK_SCRIPT.format(body=json.dumps({"product": "solar charger"})))
        wrk(ours.url, script, 2)  # warm both
        wrk(bare.url, bare_script, 2)
        cached_runs, bare_runs = [], []
        for index in range(args.rounds):
            print(f"wrk round {index + 1}/{args.rounds} ...", flush=True)
            cached_runs.append(wrk(ours.url, script, args.seconds))
            bare_runs.append(wrk(bare.url, bare_script, args.seconds))
        stats = httpx.get(ours.url + "/v1/cache/stats").json()
    finally:
        ours.stop()
        bare.stop()
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    ratio = med(cached_runs, "req_s") / med(bare_runs, "req_s")
    lines = [
        "# Cache benchmarks",
        "",
        f"Measured by `make bench` (`bench/cache_bench.py`) on {time.strftime('%Y-%m-%d')}: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Server and load generator share the machine.",
        "",
        "## Cache-hit path vs a bare FastAPI route",
        "",
        f"`wrk -t2 -c64 -d{args.seconds}s`, POST, {args.rounds} alternating rounds, medians. "
        "copygen runs with its defaults (one JSON request log line per request, Prometheus "
        "metrics) plus a real Redis as L2; every request after the first is an L1 hit. "
        "The bare route (`bench/bare_app.py`) validates a small body and returns a dict, on "
        "the same uvicorn settings.",
        "",
        "| server | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|",
        f"| copygen POST /v1/copy, cached | {med(cached_runs, 'req_s'):,.0f} "
        f"| {med(cached_runs, 'p50_ms'):.2f} | {med(cached_runs, 'p99_ms'):.2f} "
        f"| {sum(r['non_2xx'] for r in cached_runs):.0f} |",
        f"| bare FastAPI POST | {med(bare_runs, 'req_s'):,.0f} | {med(bare_runs, 'p50_ms'):.2f} "
        f"| {med(bare_runs, 'p99_ms'):.2f} | {sum(r['non_2xx'] for r in bare_runs):.0f} |",
        "",
        f"**Cached path at {ratio:.0%} of the bare route's req/s** (target ≥ 75%), "
        f"p99 {med(cached_runs, 'p99_ms'):.1f} ms (target < 25 ms).",
        "",
        "Rounds (req/s): copygen "
        + ", ".join(f"{r['req_s']:,.0f}" for r in cached_runs)
        + "; bare "
        + ", ".join(f"{r['req_s']:,.0f}" for r in bare_runs)
        + ".",
        "",
        "## A hit against a generation",
        "",
        "Serial requests from one client, medians: the same brief generated with "
        '`"cache": "bypass"` (3 requests) and served from L1 (200 requests).',
        "",
        "| path | median latency |",
        "|---|---|",
        f"| generation (embedded model, {BRIEF['variants']} variants) | {generation_ms:,.0f} ms |",
        f"| cache hit | {hit_ms:.2f} ms |",
        "",
        f"**A hit is {generation_ms / hit_ms:,.0f}x faster than a generation** (target ≥ 100x).",
        "",
        "## L1 admission: TinyLFU against plain LRU",
        "",
        "Replays of Zipf-distributed brief popularity through L1 alone (no model), same "
        "stream for both policies. One-off briefs are the long tail of requests never repeated; "
        "admission keeps them from evicting the briefs that are asked for again.",
        "",
        *admission,
        "",
        f"Cache figures after the run: hit rate {stats['hit_rate']:.1%}, "
        f"L1 {stats['l1']['entries']} entries, Redis up: {stats['l2']['up']}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
