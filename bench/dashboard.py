"""The Grafana dashboard, defined once: `--json` writes k8s/grafana/copygen-dashboard.json;
without it, a real server (embedded model, real Redis) gets a few minutes of mixed traffic
(hits, misses, streams, bad input, a Redis outage), /metrics is scraped every 2 s, and each
panel is drawn from those scrapes into docs/dashboard.png, with the same queries evaluated in
Python, so a reader sees the dashboard without Grafana.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import Server, free_port
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Scrape = tuple[float, Samples]
WINDOW_S = 20.0
JSON_PATH = Path("k8s/grafana/copygen-dashboard.json")
PNG_PATH = Path("docs/dashboard.png")


# --- evaluating the panel queries over scrapes ----------------------------------------------


def _matching(samples: Samples, name: str, where: dict[str, str]) -> Samples:
    return {
        key: value
        for key, value in samples.items()
        if key[0] == name and all(dict(key[1]).get(k) == v for k, v in where.items())
    }


def _window(scrapes: list[Scrape], i: int) -> tuple[Scrape, Scrape] | None:
    t, _ = scrapes[i]
    j = i
    while j > 0 and t - scrapes[j - 1][0] <= WINDOW_S:
        j -= 1
    return None if j == i else (scrapes[j], scrapes[i])


def rate(name: str, **where: str) -> Callable[[list[Scrape], int], float | None]:
    def f(scrapes: list[Scrape], i: int) -> float | None:
        w = _window(scrapes, i)
        if w is None:
            return None
        (t0, a), (t1, b) = w
        now = sum(_matching(b, name, where).values())
        then = sum(_matching(a, name, where).values())
        return max(0.0, now - then) / (t1 - t0)

    return f


def ratio(
    top: Callable[[list[Scrape], int], float | None],
    bottom: Callable[[list[Scrape], int], float | None],
) -> Callable[[list[Scrape], int], float | None]:
    def f(scrapes: list[Scrape], i: int) -> float | None:
        a, b = top(scrapes, i), bottom(scrapes, i)
        return None if a is None or not b else a / b

    return f


def quantile(q: float, name: str, **where: str) -> Callable[[list[Scrape], int], float | None]:
    """histogram_quantile(q, sum by (le) (rate(name_bucket[window])))."""

    def f(scrapes: list[Scrape], i: int) -> float | None:
        w = _window(scrapes, i)
        if w is None:
            return None
        (_, a), (_, b) = w
        buckets: dict[float, float] = {}
        for key, value in _matching(b, f"{name}_bucket", where).items():
            le = float(dict(key[1])["le"])
            buckets[le] = buckets.get(le, 0.0) + value - a.get(key, 0.0)
        if not buckets or buckets.get(float("inf"), 0.0) <= 0:
            return None
        total = buckets[float("inf")]
        previous_le, previous = 0.0, 0.0
        for le in sorted(buckets):
            if buckets[le] >= q * total:
                if le == float("inf"):
                    return previous_le
                span = buckets[le] - previous
                part = (q * total - previous) / span if span else 0.0
                return previous_le + (le - previous_le) * part
            previous_le, previous = le, buckets[le]
        return None

    return f


def gauge(name: str, **where: str) -> Callable[[list[Scrape], int], float | None]:
    def f(scrapes: list[Scrape], i: int) -> float | None:
        values = _matching(scrapes[i][1], name, where).values()
        return sum(values) if values else None

    return f


# --- the dashboard --------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    legend: str
    promql: str
    evaluate: Callable[[list[Scrape], int], float | None]


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    series: tuple[Series, ...]


COPY = {"handler": "/v1/copy"}
#: The histogram whose buckets carry trace ids (docs/observability.md, "exemplars").
EXEMPLARS = "copygen_http_request_duration_seconds"
_hits = rate("copygen_cache_hits_total")
_lookups = lambda s, i: (  # noqa: E731
    None
    if (h := _hits(s, i)) is None or (m := rate("copygen_cache_misses_total")(s, i)) is None
    else h + m
)

PANELS = (
    Panel(
        "Throughput",
        "reqps",
        (
            Series(
                "/v1/copy",
                'sum(rate(copygen_http_requests_total{handler="/v1/copy"}[1m]))',
                rate("copygen_http_requests_total", **COPY),
            ),
            Series(
                "all routes",
                "sum(rate(copygen_http_requests_total[1m]))",
                rate("copygen_http_requests_total"),
            ),
        ),
    ),
    Panel(
        "/v1/copy latency",
        "s",
        tuple(
            Series(
                f"p{int(q * 100)}",
                f"histogram_quantile({q}, sum by (le) (rate("
                'copygen_http_request_duration_seconds_bucket{handler="/v1/copy"}[1m])))',
                quantile(q, "copygen_http_request_duration_seconds", **COPY),
            )
            for q in (0.5, 0.95, 0.99)
        ),
    ),
    Panel(
        "Time to first token",
        "s",
        tuple(
            Series(
                f"p{int(q * 100)}",
                f"histogram_quantile({q}, sum by (le) "
                "(rate(copygen_time_to_first_token_seconds_bucket[1m])))",
                quantile(q, "copygen_time_to_first_token_seconds"),
            )
            for q in (0.5, 0.95)
        ),
    ),
    Panel(
        "Batch size (rows per step)",
        "short",
        (
            Series(
                "mean",
                "rate(copygen_batch_size_rows_sum[1m]) / rate(copygen_batch_size_rows_count[1m])",
                ratio(rate("copygen_batch_size_rows_sum"), rate("copygen_batch_size_rows_count")),
            ),
            Series(
                "p95",
                "histogram_quantile(0.95, sum by (le) (rate(copygen_batch_size_rows_bucket[1m])))",
                quantile(0.95, "copygen_batch_size_rows"),
            ),
        ),
    ),
    Panel(
        "Queue",
        "short",
        (
            Series("queued jobs", "copygen_queue_depth", gauge("copygen_queue_depth")),
            Series("running rows", "copygen_running_rows", gauge("copygen_running_rows")),
        ),
    ),
    Panel(
        "Cache hit rate",
        "percentunit",
        (
            Series(
                "hit rate",
                "sum(rate(copygen_cache_hits_total[1m])) / (sum(rate(copygen_cache_hits_total[1m]))"
                " + sum(rate(copygen_cache_misses_total[1m])))",
                ratio(_hits, _lookups),
            ),
        ),
    ),
    Panel(
        "Breakers (0 closed, 1 half-open, 2 open)",
        "short",
        tuple(
            Series(
                name,
                f'copygen_breaker_state{{breaker="{name}"}}',
                gauge("copygen_breaker_state", breaker=name),
            )
            for name in ("model", "redis")
        ),
    ),
    Panel(
        "Generated tokens / s and rejections / s",
        "short",
        (
            Series(
                "tokens/s",
                "rate(copygen_generated_tokens_total[1m])",
                rate("copygen_generated_tokens_total"),
            ),
            Series(
                "rejections/s",
                "sum(rate(copygen_rejections_total[1m]))",
                rate("copygen_rejections_total"),
            ),
        ),
    ),
    Panel(
        "Memory",
        "bytes",
        (
            Series("RSS", "process_resident_memory_bytes", gauge("process_resident_memory_bytes")),
            Series(
                "GPU reserved",
                "copygen_cuda_memory_reserved_bytes",
                gauge("copygen_cuda_memory_reserved_bytes"),
            ),
        ),
    ),
)


def grafana_json() -> dict[str, object]:
    panels = []
    for index, panel in enumerate(PANELS):
        panels.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": panel.title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 8, "x": (index % 3) * 8, "y": (index // 3) * 8},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [
                    {
                        "refId": chr(65 + n),
                        "expr": s.promql,
                        "legendFormat": s.legend,
                        # Exemplars (trace ids, when copygen traces) as dots linking to traces.
                        "exemplar": EXEMPLARS in s.promql,
                    }
                    for n, s in enumerate(panel.series)
                ],
            }
        )
    return {
        "title": "copygen",
        "uid": "copygen",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "tags": ["copygen"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


# --- a real run -----------------------------------------------------------------------------


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def drive(url: str, stop_at: float, worker: int) -> None:
    rnd = random.Random(worker)
    n = 0
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() < stop_at:
            n += 1
            roll = rnd.random()
            if roll < 0.45:
                body: dict[str, object] = {"product": f"hot item {rnd.randrange(6)}", "variants": 2}
            elif roll < 0.9:
                body = {"product": f"item {worker}-{n}", "variants": 2, "max_new_tokens": 24}
            else:
                body = {"product": "", "variants": 0}
            with contextlib.suppress(httpx.HTTPError):
                await client.post("/v1/copy", json=body)


async def record(url: str, seconds: float, on_half: Callable[[], None]) -> list[Scrape]:
    started = time.monotonic()
    stop_at = started + seconds
    scrapes: list[Scrape] = []
    load = asyncio.gather(*(drive(url, stop_at, w) for w in range(6)))
    halfway = False
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while time.monotonic() < stop_at:
            scrapes.append((time.monotonic() - started, parse((await client.get("/metrics")).text)))
            if not halfway and time.monotonic() - started > seconds / 2:
                halfway = True
                on_half()
            await asyncio.sleep(2)
    await load
    return scrapes


def draw(scrapes: list[Scrape], path: Path, note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 3, figsize=(15, 10))
    times = [t for t, _ in scrapes]
    for ax, panel in zip(axes.flat, PANELS, strict=True):
        for series in panel.series:
            values = [series.evaluate(scrapes, i) for i in range(len(scrapes))]
            if all(v is None for v in values):
                continue
            ax.plot(times, [float("nan") if v is None else v for v in values], label=series.legend)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    fig.suptitle(f"copygen dashboard, drawn from /metrics scrapes of a real run ({note})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="only write the dashboard JSON")
    parser.add_argument("--seconds", type=float, default=150)
    args = parser.parse_args()
    JSON_PATH.parent.mkdir(parents=True, exist_ok=True)
    JSON_PATH.write_text(json.dumps(grafana_json(), indent=2) + "\n")
    print(f"wrote {JSON_PATH}")
    if args.json:
        return
    workdir = Path(tempfile.mkdtemp(prefix="copygen-dash-"))
    redis_port, port = free_port(), free_port()
    redis_cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                 "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
    redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
    env = {"COPYGEN_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "COPYGEN_LOG_LEVEL": "warning"}
    server = Server("copygen-dash", [sys.executable, "-m", "copygen", "serve", "--port", str(port)],
                    env, port)  # fmt: skip

    def outage() -> None:  # Redis goes away for the second half's first third
        redis.kill()
        redis.wait()
        asyncio.get_running_loop().call_later(
            args.seconds / 6, lambda: subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
        )

    try:
        server.wait_ready("/health/ready")
        scrapes = asyncio.run(record(server.url, args.seconds, outage))
    finally:
        server.stop()
        subprocess.run(["pkill", "-f", f"redis-server 127.0.0.1:{redis_port}"], check=False)
        redis.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    draw(scrapes, PNG_PATH, "6 clients, embedded model on 2 CPU cores, Redis killed halfway")
    print(f"wrote {PNG_PATH}")


if __name__ == "__main__":
    main()
