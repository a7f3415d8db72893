"""The remote generator: copygen's generation seam served by an OpenAI-compatible server
(vLLM, llama.cpp's llama-server, SGLang, another copygen).

A job's rows become streamed chat (or text) completions: one call with ``n`` rows where the
server takes ``n``, else one call per row, each seeded apart. At most
``COPYGEN_BACKEND_MAX_CONCURRENCY`` calls are in flight; up to ``COPYGEN_MAX_QUEUE`` jobs wait
for a slot, more are refused (429). The request deadline bounds every call; leaving early
closes the call's connection, so the server stops generating. Connection errors, 5xx,
timeouts and broken streams count in the ``backend`` breaker; a 429/503 from the server is
honoured (its Retry-After) without counting. Readiness comes from a background probe of
``GET /models``, never from the probe of copygen's own readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from copygen.backends.client import BackendCallError, OpenAIClient
from copygen.backends.job import RefusedN, RemoteJob, RemoteStream, Row
from copygen.backends.wire import domain_error, request_body, stream_rows
from copygen.config import Settings
from copygen.deadline import Deadline
from copygen.domain import GenerationRequest, ScoreRequest
from copygen.errors import BackendOverloaded, GenerationFailed
from copygen.generation import (
    FinishedJob,
    GeneratorSnapshot,
    MetricsSink,
    NullMetrics,
    QueueFigures,
    RowEvent,
    RowKey,
    Settle,
    relay,
)
from copygen.resilience.admission import Admission
from copygen.resilience.breaker import CircuitBreaker
from copygen.resilience.memory import MemoryGuard

log = logging.getLogger("copygen.backend")

#: How often the background probe asks the backend for its models.
PROBE_EVERY_S = 2.0
#: Seeds of the rows of one request, when the server does not take ``n``, lie this far apart.
SEED_STRIDE = 7919


class RemoteBackend:
    """copygen.generation's Generator over an OpenAI-compatible server."""

    def __init__(self, settings: Settings, client: OpenAIClient | None = None) -> None:
        assert settings.backend_url, "the remote backend needs COPYGEN_BACKEND_URL"
        self.settings = settings
        self.client = client or OpenAIClient(
            settings.backend_url,
            api_key=settings.backend_key(),
            timeout_s=settings.backend_timeout_s,
            max_connections=settings.backend_max_concurrency,
        )
        self._slots = asyncio.Semaphore(settings.backend_max_concurrency)
        self._waiting = 0
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._model: str | None = settings.backend_model
        #: Whether the server takes ``n`` > 1 (None: not tried yet).
        self._takes_n: bool | None = None
        self._busy_until = 0.0
        self._probe_task: asyncio.Task[None] | None = None
        self._up = False
        self.probe_latency_s: float | None = None
        self.last_error: str | None = None
        self.calls_total = 0
        self.breaker = CircuitBreaker(
            "backend",
            failure_threshold=settings.breaker_failures,
            reset_s=settings.breaker_reset_s,
        )
        self.memory = MemoryGuard(
            rss_high_bytes=settings.memory_high_bytes,
            device_high_ratio=settings.cuda_memory_high_ratio,
            read_device=dict,
            relieve=lambda: None,
        )
        self.gate = Admission(
            "model server",
            "the model server is not answering yet; retry shortly",
            self.breaker,
            self.memory,
            settings.max_queue,
        )
        self.metrics: MetricsSink = NullMetrics()
        self.startup_error: str | None = None

    # --- what the seam exposes -------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._model or "remote"

    @property
    def revision(self) -> str:
        """The server, so two backends serving the same model id never share cached copy."""
        return f"remote:{self.client.host}"

    @property
    def ready(self) -> bool:
        return self._up

    async def start(self) -> None:
        """Probe once now, then every PROBE_EVERY_S in the background."""
        await self._probe()
        self._probe_task = asyncio.create_task(self._probe_forever(), name="copygen-backend-probe")

    async def stop(self) -> None:
        self._up = False
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        await self.client.close()

    async def run(
        self,
        requests: Sequence[GenerationRequest],
        deadline: Deadline,
        on_event: Callable[[RowEvent], None] | None = None,
        *,
        settle: Settle | None = None,
        follow_up: bool = False,
    ) -> FinishedJob:
        """``settle`` is not used: a request's ``n`` rows are one call to the server."""
        return await relay(self._open(requests, deadline, follow_up=follow_up), on_event)

    def open_stream(
        self, requests: Sequence[GenerationRequest], deadline: Deadline
    ) -> RemoteStream:
        return self._open(requests, deadline)

    async def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        raise GenerationFailed("relevance scoring needs the in-process model")

    def snapshot(self) -> GeneratorSnapshot:
        latency = self.probe_latency_s
        return GeneratorSnapshot(
            model_id=self.model_id,
            ready=self._up,
            gate=self.gate,
            figures=QueueFigures(
                queued_jobs=self._waiting,
                running_rows=self._in_flight,
                jobs_rejected=self.gate.rejected_total,
                backend_in_flight=self._in_flight,
                backend_calls=self.calls_total,
            ),
            sections={
                "model": {"id": self.model_id, "device": "remote", "error": self.startup_error},
                "backend": {
                    "host": self.client.host,
                    "model": self._model,
                    "state": "up" if self._up else "down",
                    "latency_ms": None if latency is None else round(latency * 1000, 2),
                    "takes_n": self._takes_n,
                    "max_concurrency": self.settings.backend_max_concurrency,
                    "last_error": self.last_error,
                },
            },
        )

    # --- admission -------------------------------------------------------------------------

    def _open(
        self,
        requests: Sequence[GenerationRequest],
        deadline: Deadline,
        *,
        follow_up: bool = False,
    ) -> RemoteStream:
        """Refuse cheaply: the server asked to slow down, or the admission gate says no."""
        now = asyncio.get_running_loop().time()
        if now < self._busy_until:
            raise BackendOverloaded(
                "the model server asked to slow down; retry shortly",
                retry_after_s=max(1, math.ceil(self._busy_until - now)),
            )
        self.gate.admit(ready=self._up, queued=self._waiting, follow_up=follow_up)
        return RemoteStream(self, RemoteJob(next(self._ids), requests, deadline, now))

    # --- calls -----------------------------------------------------------------------------

    def plan(
        self, job_id: int, index: int, request: GenerationRequest
    ) -> list[tuple[list[RowKey], int | None]]:
        """The calls one request becomes: (row keys, seed) each."""
        keys = [(job_id, index, row) for row in range(request.n)]
        seed = request.sampling.seed
        if request.n == 1 or self._takes_n is not False:
            return [(keys, seed)]
        return [
            ([key], None if seed is None else (seed + row * SEED_STRIDE) % 2**63)
            for row, key in enumerate(keys)
        ]

    def calls(
        self, job: RemoteJob, emit: Callable[[RowEvent], None]
    ) -> list[Coroutine[Any, Any, None]]:
        """The calls that stream ``job``'s rows (CallOwner)."""
        return [
            self._rows(job, index, keys, seed, emit)
            for index, request in enumerate(job.requests)
            for keys, seed in self.plan(job.id, index, request)
        ]

    async def _rows(
        self,
        job: RemoteJob,
        index: int,
        keys: list[RowKey],
        seed: int | None,
        emit: Callable[[RowEvent], None],
    ) -> None:
        """The rows ``keys`` of request ``index``: one call, or one per row when the server
        turns out not to take ``n`` (it refused before generating anything)."""
        try:
            await self._call(job, index, keys, seed, emit)
        except RefusedN:
            plan = self.plan(job.id, index, job.requests[index])
            await asyncio.gather(*(self._call(job, index, ks, s, emit) for ks, s in plan))

    async def _call(
        self,
        job: RemoteJob,
        index: int,
        keys: list[RowKey],
        seed: int | None,
        emit: Callable[[RowEvent], None],
    ) -> None:
        """One streamed completion within a concurrency slot; its events go to ``emit``."""
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        loop = asyncio.get_running_loop()
        job.admitted = job.admitted or loop.time()
        self._in_flight += 1
        self.calls_total += 1
        started, outcome = loop.time(), "error"
        rows = [Row(key) for key in keys]
        try:
            path, body = request_body(job.requests[index], self.model_id, len(keys), seed)
            usage = await stream_rows(self.client, path, body, rows, emit)
            if len(keys) > 1:
                self._takes_n = True
            for event in job.record(index, rows, usage):
                emit(event)
            self.breaker.success()
            outcome = "ok"
        except BackendCallError as exc:
            if exc.reason == "status_4xx" and len(keys) > 1 and self._takes_n is None:
                self._takes_n = False
                log.info("the backend does not take n > 1: one call per row from now on")
                raise RefusedN from exc
            self._failed(exc)
            raise domain_error(exc) from exc
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._in_flight -= 1
            self._slots.release()
            first = min((row.first_token for row in rows if row.first_token), default=None)
            ttft = None if first is None else first - started
            self.metrics.backend_call(outcome, loop.time() - started, ttft)
            if first is not None and (job.first_token is None or first < job.first_token):
                job.first_token = first

    def job_done(self, job: RemoteJob) -> None:
        timings = job.timings_ms()
        first = timings.get("first_token")
        generations = job.generations()
        self.metrics.job_done(
            timings["queue"] / 1000,
            None if first is None else first / 1000,
            sum(g.prompt_tokens for g in generations),
            sum(c.completion_tokens for g in generations for c in g.completions),
        )

    def deadline_missed(self, job: RemoteJob) -> None:
        """A job ran past its deadline: with calls still streaming, a slow backend counts."""
        if not self._in_flight:
            return
        self.last_error = "backend timeout"
        self.metrics.backend_error("deadline")
        self.breaker.failure()

    def _failed(self, exc: BackendCallError) -> None:
        self.last_error = str(exc)
        self.metrics.backend_error(exc.reason)
        if exc.retry_after_s is not None:
            loop = asyncio.get_running_loop()
            self._busy_until = max(self._busy_until, loop.time() + exc.retry_after_s)
        if exc.counts:
            self.breaker.failure()

    # --- readiness -------------------------------------------------------------------------

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(PROBE_EVERY_S)
            await self._probe()

    async def _probe(self) -> None:
        started = time.perf_counter()
        try:
            models = await self.client.models()
        except BackendCallError as exc:
            if exc.reason != "busy":  # a server that says "busy" is alive: keep its state
                self._set_up(False, str(exc))
            return
        self.probe_latency_s = time.perf_counter() - started
        wanted = self.settings.backend_model
        if wanted is None and models:
            self._model = models[0]
        if self._model is None or self._model not in models:
            self._set_up(False, "the backend does not serve the configured model")
            return
        self._set_up(True, None)

    def _set_up(self, up: bool, error: str | None) -> None:
        if up != self._up:
            log.warning("backend %s is %s", self.client.host, "up" if up else f"down: {error}")
        self._up = up
        self.startup_error = error
