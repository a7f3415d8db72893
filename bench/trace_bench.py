"""`make bench` (tracing part): what OpenTelemetry tracing costs. Writes
docs/trace-benchmarks.md.

Two `copygen serve` processes with default settings, side by side: tracing off (no OTLP
endpoint) and on at 100% sampling (``OTEL_TRACES_SAMPLER=always_on``), exporting to an OTLP/HTTP
sink in its own process that reads and drops every export (a collector's work is not ours).
1. Cached hits: closed-loop clients POST the same brief (the fast path), alternating servers
   round by round; req/s, latency, and the server's own CPU per request (from /proc, so the
   load generator sharing the machine does not blur it).
2. The copy workload: distinct briefs generated one after another (embedded model, cache
   bypassed), alternating servers brief by brief; latency and server CPU per brief.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import Server, free_port

HIT = {"product": "solar charger", "channel": "google_ads_headline", "variants": 3, "seed": 7}
PRODUCTS = ("desk lamp", "hiking boots", "cold brew coffee", "yoga mat", "phone case",
            "rain jacket", "tea kettle", "bike light")  # fmt: skip
#: An OTLP/HTTP endpoint that accepts every export and keeps nothing.
SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads, the exporter's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    requests: int
    seconds: float
    cpu_s: float
    latencies_ms: list[float]

    @property
    def req_s(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.requests * 1e6

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def hits(server: Server, seconds: float, clients: int) -> Run:
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = await http.post("/v1/copy", json=HIT)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:
        cpu, began = cpu_seconds(server.process.pid), time.monotonic()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.monotonic() - began
        return Run(len(latencies), elapsed, cpu_seconds(server.process.pid) - cpu, latencies)


def brief(server: Server, product: str) -> tuple[float, float]:
    """One generated brief: (latency ms, server CPU s)."""
    body = {"product": product, "channel": "google_ads_headline", "variants": 3,
            "cache": "bypass", "seed": 1}  # fmt: skip
    cpu, started = cpu_seconds(server.process.pid), time.perf_counter()
    httpx.post(f"{server.url}/v1/copy", json=body, timeout=120).raise_for_status()
    return (time.perf_counter() - started) * 1000, cpu_seconds(server.process.pid) - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10, help="per cached-hit round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--briefs", type=int, default=len(PRODUCTS))
    parser.add_argument("--out", type=Path, default=Path("docs/trace-benchmarks.md"))
    args = parser.parse_args()

    load = os.getloadavg()[0]
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(sink_port)])
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    os.environ.clear()
    os.environ.update(environ)  # Server passes os.environ on: no OTEL_* from outside
    traced_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    servers = {}
    for name, env in (("off", {}), ("on", traced_env)):
        port = free_port()
        command = [sys.executable, "-m", "copygen", "serve", "--port", str(port)]
        servers[name] = Server(f"copygen-tracing-{name}", command, env, port)
    runs: dict[str, list[Run]] = {"off": [], "on": []}
    generated: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    try:
        for server in servers.values():
            server.wait_ready("/health/ready")
            asyncio.run(hits(server, 2, args.clients))  # fill L1, warm both
        for index in range(args.rounds):
            for name, server in servers.items():
                print(f"cached hits, tracing {name}, round {index + 1}/{args.rounds} ...")
                runs[name].append(asyncio.run(hits(server, args.seconds, args.clients)))
        for product in PRODUCTS[: args.briefs]:
            for name, server in servers.items():
                generated[name].append(brief(server, product))
    finally:
        for server in servers.values():
            server.stop()
        sink.terminate()
        sink.wait(10)

    def med(name: str, value: str) -> float:
        return statistics.median(getattr(run, value) for run in runs[name])

    def p(name: str, q: float) -> float:
        return statistics.median(run.quantile_ms(q) for run in runs[name])

    def gen(name: str, index: int) -> float:
        return statistics.median(sample[index] for sample in generated[name])

    hit_rows = [
        f"| {name} | {med(name, 'req_s'):,.0f} | {p(name, 0.5):.2f} | {p(name, 0.99):.2f} "
        f"| {med(name, 'cpu_us'):,.0f} |"
        for name in ("off", "on")
    ]
    gen_rows = [
        f"| {name} | {gen(name, 0):,.0f} | {gen(name, 1) * 1000:,.0f} |" for name in ("off", "on")
    ]
    lines = [
        "# Tracing benchmarks",
        "",
        f"Measured by `make bench` (`bench/trace_bench.py`) on {time.strftime('%Y-%m-%d')}: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load:.1f} at the start. Servers, "
        "clients and the OTLP sink share the machine; the server's own CPU per request (from "
        "/proc) is the steadier figure.",
        "",
        "Tracing **off**: no `OTEL_EXPORTER_OTLP_ENDPOINT` (the default). **On**: every request "
        "traced (`OTEL_TRACES_SAMPLER=always_on`) and exported over OTLP/HTTP to a sink that "
        "drops it.",
        "",
        f"## Cached hits (the fast path), {args.clients} clients, {args.rounds} alternating "
        f"rounds of {args.seconds:g} s, medians",
        "",
        "| tracing | req/s | p50 ms | p99 ms | server CPU µs / request |",
        "|---|---|---|---|---|",
        *hit_rows,
        "",
        f"Traced, a hit costs {med('on', 'cpu_us') / med('off', 'cpu_us'):.1f}x the server CPU "
        "(one server span, made and exported). Off, the fast path runs no tracing code (the "
        "middleware is not installed; the latency histogram reads one flag), so it is the path "
        "as it was before tracing.",
        "",
        f"## The copy workload: {len(generated['off'])} distinct briefs (Google Ads headlines, "
        "3 variants, cache bypassed), one at a time, alternating servers, medians",
        "",
        "| tracing | latency ms | server CPU ms / brief |",
        "|---|---|---|",
        *gen_rows,
        "",
        "A generated brief makes a dozen spans or so (request, cache lookup, rounds and their "
        "phases): lost in the generation's own time.",
        "",
        f"Rounds (req/s): off {', '.join(f'{r.req_s:,.0f}' for r in runs['off'])}; "
        f"on {', '.join(f'{r.req_s:,.0f}' for r in runs['on'])}.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
