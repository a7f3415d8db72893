"""Soak: minutes of mixed load with faults injected (runner errors, out-of-memory steps,
slow steps past the deadline, a Redis kill and restart, clients that give up) through the
real app, scheduler and Redis. Every request is accounted for, per request id, and RSS stays
flat. COPYGEN_SOAK_S sets the duration (default 120 s); COPYGEN_SOAK_REPORT a JSON file for
the figures quoted in docs/reliability.md."""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections import Counter

import httpx
import psutil
import structlog

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.fakes import FakeRunner
from tests.services import RedisServer

SOAK_S = float(os.environ.get("COPYGEN_SOAK_S", "90"))
CLIENTS = 12
EXPLICIT = {"queue_full", "circuit_open", "deadline_exceeded", "generation_failed", "rate_limited"}

#: The engine's counters of jobs that ended, one way or another.
ENDED = ("jobs_completed", "jobs_failed", "jobs_cancelled_queued", "jobs_cancelled_running")


class Faults:
    """Decides, step by step, whether the fake runner fails (1%) or stalls (0.2%)."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()

    def fail(self) -> bool:
        with self.lock:
            roll = self.rnd.random()
        if roll < 0.002:
            time.sleep(1.2)  # past the 1 s deadline of the rows in this step
            return False
        return roll < 0.012


class Ledger:
    """Per request id: the outcome the client saw against the status the server logged,
    checked as each request ends (so the harness itself holds no growing memory)."""

    def __init__(self) -> None:
        self.served: dict[str, int] = {}
        self.kinds: Counter[str] = Counter()
        self.mismatches: list[tuple[str, str, int | None]] = []

    def settle(self, rid: str, outcome: str) -> None:
        status = self.served.pop(rid, None)
        self.kinds[outcome.split(":")[-1]] += 1
        expected = {"completed": (200,), "abandoned": (200, 499)}.get(outcome)
        if expected is None:
            expected = (int(outcome.split(":")[0]),)
        if status not in expected:
            self.mismatches.append((rid, outcome, status))


async def _client_loop(c: httpx.AsyncClient, worker: int, stop_at: float, ledger: Ledger) -> None:
    rnd = random.Random(worker)
    n = 0
    while time.monotonic() < stop_at:
        n += 1
        rid = f"soak-{worker}-{n}"
        headers = {"X-Request-ID": rid}
        roll = rnd.random()
        if roll < 0.35:
            body: dict[str, object] = {"product": f"hot {rnd.randrange(15)}", "variants": 2}
        elif roll < 0.65:
            body = {"product": f"fresh {worker}-{n}", "variants": rnd.randint(1, 3)}
        elif roll < 0.72:
            body = {"product": "", "variants": 99}  # invalid
        elif roll < 0.80:
            body = {"product": f"stream {worker}-{n}", "variants": 1, "stream": True}
        else:
            body = {"product": f"impatient {worker}-{n}", "variants": 2, "cache": "bypass"}
        patience = 0.05 if roll >= 0.80 and rnd.random() < 0.5 else 30.0
        try:
            # Through ASGITransport a client giving up cancels the request's task: the app
            # sees what a disconnect looks like.
            async with asyncio.timeout(patience):
                response = await c.post("/v1/copy", json=body, headers=headers)
        except TimeoutError:
            ledger.settle(rid, "abandoned")
            continue
        if response.status_code == 200:
            ledger.settle(rid, "completed")
        else:
            error = response.json()["error"]["type"]
            ledger.settle(rid, f"{response.status_code}:{error}")


async def _sample_rss(process: psutil.Process, samples: list[int], stop_at: float) -> None:
    while time.monotonic() < stop_at:
        await asyncio.sleep(5)
        samples.append(process.memory_info().rss)


async def test_mixed_load_with_faults_loses_nothing_and_rss_stays_flat(
    redis_server: RedisServer,
) -> None:
    faults = Faults(seed=7)
    runner = FakeRunner(step_delay_s=0.004, oom_above=12, fail_when=faults.fail, record=False)
    settings = Settings(
        warmup=False,
        redis_url=redis_server.url,
        request_timeout_s=1.0,
        max_queue=48,
        max_batch_size=16,
        breaker_failures=4,
        breaker_reset_s=0.5,
    )
    app = create_app(settings, engine=Engine(settings, runner))
    ledger = Ledger()
    process = psutil.Process()
    rss: list[int] = []
    served = ledger.served

    def record(_: object, __: str, event: dict[str, object]) -> dict[str, object]:
        # Keep (request id, status) of request lines only: capturing whole log entries would
        # make the harness itself grow RSS.
        if event.get("event") == "request" and str(event["request_id"]).startswith("soak-"):
            served[str(event["request_id"])] = int(event["status"])  # type: ignore[call-overload]
        raise structlog.DropEvent

    structlog.configure(processors=[record])
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            while (await c.get("/health/ready")).status_code != 200:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            stop_at = started + SOAK_S
            clients = asyncio.gather(*(_client_loop(c, w, stop_at, ledger) for w in range(CLIENTS)))
            sampler = asyncio.create_task(_sample_rss(process, rss, stop_at))
            await asyncio.sleep(SOAK_S / 4)
            redis_server.kill()
            await asyncio.sleep(SOAK_S / 8)
            redis_server.start()
            await clients
            await sampler
            # Let abandoned work and breakers settle: every accepted job ends (within 10 s).
            for _ in range(100):
                await asyncio.sleep(0.1)
                health = (await c.get("/health")).json()
                e = health["engine"]
                ended = sum(e[k] for k in ENDED)
                if ended == e["jobs_submitted"] and not e["running_rows"]:
                    break
    finally:
        structlog.reset_defaults()

    half = len(rss) // 2
    settled_mib = (max(rss[half:]) - max(rss[:half])) / 2**20
    kinds = ledger.kinds
    engine = health["engine"]
    report = os.environ.get("COPYGEN_SOAK_REPORT")
    if report:
        figures = {
            "seconds": SOAK_S,
            "requests": sum(kinds.values()),
            "outcomes": dict(kinds),
            "engine": engine,
            "rss_mib_every_5s": [round(sample / 2**20, 1) for sample in rss],
            "second_half_growth_mib": round(settled_mib, 1),
            "oom_splits": engine["oom_splits"],
            "redis_up_at_end": health["redis"]["up"],
        }
        with open(report, "w") as out:
            json.dump(figures, out, indent=2)

    # Every request ended in an explicit way, and the server logged what the client saw.
    assert kinds["completed"] > 100
    unexpected = set(kinds) - {"completed", "abandoned", "validation_error", *EXPLICIT}
    assert not unexpected, unexpected
    assert not ledger.mismatches, ledger.mismatches[:5]
    assert not ledger.served  # no request line without a client outcome
    # Nothing accepted by the scheduler is unaccounted for, and nothing is left behind.
    finished = sum(engine[k] for k in ENDED)
    assert engine["jobs_submitted"] == finished
    assert engine["queued_jobs"] == 0
    assert engine["running_rows"] == 0
    # Flat: after the first half (caches full, allocator settled) RSS grows no further than
    # a few MiB: the harness's own per-request bookkeeping keeps growing.
    assert settled_mib < 16, f"RSS grew {settled_mib:.1f} MiB in the second half"
