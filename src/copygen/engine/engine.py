"""The engine: rows and tokens. It admits or refuses work (cold, draining, breaker open, memory
high), queues it for the scheduler and hands back each job's result or its token stream. It
knows nothing of copy, caches or HTTP (service/copywriter.py builds copy on top of it)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from copygen.config import Settings
from copygen.config_sections import ModelSection
from copygen.deadline import Deadline
from copygen.domain import ChatMessage, GenerationRequest, SamplingParams, ScoreRequest
from copygen.engine.batch_policy import BatchPolicy
from copygen.engine.protocols import Runner, RunnerInfo
from copygen.engine.scheduler import DecodeJob, Scheduler
from copygen.engine.stream import TokenStream
from copygen.errors import DeadlineExceeded, GenerationFailed, NotReady
from copygen.generation import (
    FinishedJob,
    GeneratorSnapshot,
    MetricsSink,
    NullMetrics,
    QueueFigures,
    RowEvent,
    Settle,
    relay,
)
from copygen.resilience.admission import Admission
from copygen.resilience.breaker import BreakerState, CircuitBreaker
from copygen.resilience.memory import MemoryGuard, cgroup_limit_bytes

log = logging.getLogger("copygen.engine")


def _default_rss_high() -> int | None:
    limit = cgroup_limit_bytes()
    return int(limit * 0.9) if limit else None


WARMUP_REQUEST = GenerationRequest(
    messages=(ChatMessage("user", "Write a three-word slogan for coffee."),),
    sampling=SamplingParams(temperature=0.0, max_new_tokens=4),
)


class Engine:
    """The in-process generator (copygen.generation's Generator): owns the runner, its one
    model thread and the scheduler in front of it."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self.settings = settings
        self._runner = runner
        # One model thread: torch already uses every core for one forward pass, and the
        # model is not safe to call from two threads at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copygen-model")
        self.policy = BatchPolicy(
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_batch_wait_ms / 1000,
            continuous=settings.batching == "continuous",
        )
        self._scheduler: Scheduler | None = None
        self.breaker = CircuitBreaker(
            "model",
            failure_threshold=settings.breaker_failures,
            reset_s=settings.breaker_reset_s,
            on_change=self._breaker_changed,
        )
        self.memory = MemoryGuard(
            rss_high_bytes=settings.memory_high_bytes or _default_rss_high(),
            device_high_ratio=settings.cuda_memory_high_ratio,
            read_device=self._device_stats,
            relieve=self._relieve_memory,
        )
        self.gate = Admission(
            "model",
            "the model is still loading; retry shortly",
            self.breaker,
            self.memory,
            settings.max_queue,
        )
        self._memory_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[object]] = set()
        self.degraded_to_cpu = False
        #: Set before start() to receive step and job observations (the runtime sets Prometheus).
        self.metrics: MetricsSink = NullMetrics()
        self._ready = asyncio.Event()
        self.info: RunnerInfo | None = None
        self.startup_error: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        """The production engine: the transformers runner (torch is imported only here)."""
        from copygen.engine.model.runner import TransformersRunner

        runner = TransformersRunner.of(settings.section(ModelSection))
        return cls(settings, runner)

    @property
    def model_id(self) -> str:
        return self._runner.model_id

    @property
    def revision(self) -> str:
        """Which weights the model id names (part of cache keys)."""
        return self._runner.revision

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        """Load and warm the model. On failure the engine stays not-ready and says why."""
        try:
            loop = asyncio.get_running_loop()
            self.info = await loop.run_in_executor(self._executor, self._runner.load)
            self._scheduler = Scheduler(
                self._runner,
                self.policy,
                self._executor,
                metrics=self.metrics,
                on_outcome=self._job_outcome,
            )
            self._scheduler.start()
            if self.settings.warmup:
                warmup = Deadline.within(self.settings.request_timeout_s)
                await self._scheduler.submit([WARMUP_REQUEST], warmup).future
        except Exception as exc:
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.exception("engine start failed")
            raise
        # Move everything loaded so far (torch, transformers, the model) out of the collector's
        # reach: otherwise every full collection walks millions of long-lived objects and stalls
        # the event loop for a few hundred ms (seen as p99 spikes on cache hits).
        gc.collect()
        gc.freeze()
        self._memory_task = asyncio.create_task(self._watch_memory(), name="copygen-memory")
        self._ready.set()
        log.info("engine ready")

    async def stop(self) -> None:
        self._ready.clear()
        for task in [self._memory_task, *self._background]:
            if task is not None:
                task.cancel()
        if self._scheduler is not None:
            await self._scheduler.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _job_outcome(self, job: DecodeJob, error: BaseException | None) -> None:
        """Feed the model breaker: runner failures and deadlines count, cancellations do not."""
        if error is None:
            self.breaker.success()
        elif isinstance(error, GenerationFailed | DeadlineExceeded):
            self.breaker.failure()

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        """The model breaker opening may move the model to the CPU (the breaker logs the
        transition; the runtime counts it)."""
        if new is BreakerState.OPEN:
            self._maybe_fall_back()

    def _maybe_fall_back(self) -> None:
        info = self.info
        if not self.settings.device_fallback or info is None or info.device == "cpu":
            return
        task = asyncio.get_running_loop().create_task(self._fall_back(), name="copygen-fallback")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fall_back(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.info = await loop.run_in_executor(self._executor, self._runner.fallback_to_cpu)
        except Exception:
            log.exception("falling back to the CPU failed")
            return
        self.degraded_to_cpu = True
        self.breaker.success()  # a fresh device: close and let traffic find out
        log.warning("model moved to the CPU after repeated device failures")

    def _relieve_memory(self) -> None:
        gc.collect()
        self._executor.submit(self._runner.release_memory)

    async def _watch_memory(self, every_s: float = 0.5) -> None:
        """Check memory; each time the model falls idle after work, give freed memory back
        (the runner trims the heap, or empties the accelerator's cache)."""
        released_at = 0
        while True:
            self.memory.check()
            scheduler = self._scheduler
            if (
                scheduler is not None
                and not scheduler.running_rows
                and not scheduler.queued_jobs
                and scheduler.stats.steps != released_at
            ):
                released_at = scheduler.stats.steps
                self._executor.submit(self._runner.release_memory)
            await asyncio.sleep(every_s)

    def _device_stats(self) -> dict[str, float]:
        return self._runner.device_stats() if self.info is not None else {}

    def snapshot(self) -> GeneratorSnapshot:
        """The model, its queue and batching figures, its breaker and memory, typed."""
        info, settings = self.info, self.settings
        return GeneratorSnapshot(
            model_id=self.model_id,
            ready=self.ready,
            gate=self.gate,
            figures=self._figures(),
            sections={
                "model": {
                    "id": self.model_id,
                    "device": info.device if info else None,
                    "dtype": info.dtype if info else None,
                    "load_seconds": info.load_seconds if info else None,
                    "chat_template": info.chat_template if info else None,
                    "forward": info.forward if info else None,
                    "error": self.startup_error,
                },
                "batching": {
                    "mode": settings.batching,
                    "max_batch_size": settings.max_batch_size,
                    "ceiling": self.policy.ceiling,
                    "max_batch_wait_ms": settings.max_batch_wait_ms,
                    "idle_wait_window_ms": round(self.policy.window_s() * 1000, 2),
                },
            },
            load_seconds=info.load_seconds if info else None,
            degraded_to_cpu=self.degraded_to_cpu,
            device=self._device_stats(),
            likelihoods=True,
        )

    def _figures(self) -> QueueFigures:
        scheduler = self._scheduler
        if scheduler is None:
            return QueueFigures(jobs_rejected=self.gate.rejected_total)
        s = scheduler.stats
        return QueueFigures(
            queued_jobs=scheduler.queued_jobs,
            running_rows=scheduler.running_rows,
            jobs_rejected=self.gate.rejected_total,
            steps=s.steps,
            forward_passes=self._runner.forward_passes_total,
            draft_tokens=self._runner.drafted_tokens_total,
            draft_tokens_accepted=self._runner.accepted_tokens_total,
            prompt_tokens_reused=self._runner.reused_prompt_tokens_total,
            mean_batch_rows=round(s.rows_stepped / s.steps, 2) if s.steps else 0.0,
            max_batch_rows=s.max_batch_rows,
            jobs_submitted=s.jobs_submitted,
            jobs_completed=s.jobs_completed,
            jobs_cancelled_queued=s.jobs_cancelled_queued,
            jobs_cancelled_running=s.jobs_cancelled_running,
            jobs_failed=s.jobs_failed,
            oom_splits=s.oom_splits,
            oom_failures=s.oom_failures,
            rows_settled=s.rows_settled,
            batch_ceiling=self.policy.ceiling,
        )

    def _submit(
        self,
        requests: Sequence[GenerationRequest],
        deadline: Deadline,
        *,
        stream: bool = False,
        follow_up: bool = False,
        settle: Settle | None = None,
    ) -> TokenStream:
        """Refuse cheaply first (the admission gate), then queue."""
        scheduler = self._scheduler
        ready = self.ready and scheduler is not None
        self.gate.admit(
            ready=ready,
            queued=scheduler.queued_jobs if scheduler is not None else 0,
            follow_up=follow_up,
        )
        assert scheduler is not None
        job = scheduler.submit(requests, deadline, stream=stream, settle=settle)
        return TokenStream(scheduler, job, deadline)

    async def run(
        self,
        requests: Sequence[GenerationRequest],
        deadline: Deadline,
        on_event: Callable[[RowEvent], None] | None = None,
        *,
        settle: Settle | None = None,
        follow_up: bool = False,
    ) -> FinishedJob:
        """Generate ``requests`` as one job by ``deadline``; see generation.Generator.run."""
        if on_event is None:
            stream = self._submit(requests, deadline, follow_up=follow_up, settle=settle)
            await stream.result()
            return stream.finished()
        stream = self._submit(requests, deadline, stream=True, follow_up=follow_up, settle=settle)
        return await relay(stream, on_event)

    async def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Mean log-probability per token of each text after its messages, on the model
        thread between decoding steps."""
        if not self.ready:
            raise NotReady("the model is still loading; retry shortly")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._runner.score, requests)

    def open_stream(self, requests: Sequence[GenerationRequest], deadline: Deadline) -> TokenStream:
        """Submit now (so a full queue or a cold model fail before any byte is sent) and
        return a stream of every row's token deltas."""
        return self._submit(requests, deadline, stream=True)
