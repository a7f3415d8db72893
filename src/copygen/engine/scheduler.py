"""The scheduler: the queue in front of the runner (bounded by the engine's admission gate,
ordered by deadline) and the loop that drives it: each iteration asks the BatchPolicy how many
queued rows join, then runs one ``Runner.step`` on the single model thread. Jobs whose caller
gave up (deadline, disconnect) are dropped: never started if still queued, their rows removed
from the running batch at the next step if not."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Literal

from copygen.deadline import Deadline
from copygen.domain import Completion, Generation, GenerationRequest
from copygen.engine.batch_policy import BatchPolicy
from copygen.engine.protocols import RowSpec, Runner, RunnerOutOfMemory
from copygen.errors import DeadlineExceeded, GenerationFailed
from copygen.generation import (
    MetricsSink,
    NullMetrics,
    RowEvent,
    RowKey,
    Settle,
    job_generations,
)

log = logging.getLogger("copygen.scheduler")

STOP_TIMEOUT_S = 5.0


@dataclass(eq=False)
class DecodeJob:
    """One submission: several requests, each sampled ``n`` times, finished together by
    ``deadline`` (the request's, on the scheduler's clock)."""

    id: int
    requests: Sequence[GenerationRequest]
    deadline: float
    submitted_at: float
    future: asyncio.Future[list[Generation]]
    pending: deque[RowSpec] = field(default_factory=deque)
    live: set[RowKey] = field(default_factory=set)
    completions: dict[RowKey, Completion] = field(default_factory=dict)
    specs: dict[RowKey, RowSpec] = field(default_factory=dict)
    prompt_tokens: dict[int, int] = field(default_factory=dict)
    events: asyncio.Queue[RowEvent] | None = None
    #: Asked after each step in which rows of a request finished; True drops its other rows.
    settle: Settle | None = None
    admitted_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None

    @property
    def rows(self) -> int:
        return sum(request.n for request in self.requests)

    @property
    def done(self) -> bool:
        return self.future.done()

    def finished_rows(self, index: int) -> list[Completion]:
        """Request ``index``'s completions so far, in row order."""
        return [self.completions[key] for key in sorted(self.completions) if key[1] == index]

    def generations(self) -> list[Generation]:
        return job_generations(self.id, self.requests, self.completions, self.prompt_tokens)


@dataclass
class SchedulerStats:
    steps: int = 0
    rows_stepped: int = 0
    jobs_submitted: int = 0
    jobs_completed: int = 0
    jobs_cancelled_queued: int = 0
    jobs_cancelled_running: int = 0
    max_batch_rows: int = 0
    jobs_failed: int = 0
    oom_splits: int = 0
    oom_failures: int = 0
    #: Rows dropped (running or queued) because their request already had what it needed.
    rows_settled: int = 0


class Scheduler:
    def __init__(
        self,
        runner: Runner,
        policy: BatchPolicy,
        executor: Executor,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: MetricsSink | None = None,
        on_outcome: Callable[[DecodeJob, BaseException | None], None] | None = None,
    ) -> None:
        """``on_outcome(job, error)`` hears how every job that reached the runner ended."""
        self._runner = runner
        self._on_outcome = on_outcome
        self._metrics = metrics or NullMetrics()
        self.policy = policy
        self._executor = executor
        self._clock = clock
        self._ids = itertools.count(1)
        self._waiting: deque[DecodeJob] = deque()
        self._running: dict[int, DecodeJob] = {}
        self._drop: set[RowKey] = set()
        self._live_rows = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = SchedulerStats()

    @property
    def queued_jobs(self) -> int:
        return len(self._waiting)

    @property
    def running_rows(self) -> int:
        return self._live_rows

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="copygen-scheduler")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._task, STOP_TIMEOUT_S)
        for job in [*self._waiting, *self._running.values()]:
            self._fail(job, GenerationFailed("the service is shutting down"))

    def submit(
        self,
        requests: Sequence[GenerationRequest],
        deadline: Deadline,
        *,
        stream: bool = False,
        settle: Settle | None = None,
    ) -> DecodeJob:
        """Queue a job that must finish by ``deadline``. ``settle``: see generation.Settle."""
        now = self._clock()
        job = DecodeJob(
            id=next(self._ids),
            requests=requests,
            deadline=deadline.at,
            submitted_at=now,
            future=asyncio.get_running_loop().create_future(),
            events=asyncio.Queue() if stream else None,
            settle=settle,
        )
        for index, request in enumerate(requests):
            base = request.sampling.seed
            for row in range(request.n):
                seed = secrets.randbits(63) if base is None else (base + row) % 2**63
                spec = RowSpec((job.id, index, row), request, seed)
                job.pending.append(spec)
                job.specs[spec.key] = spec
        self._queue(job)
        self.stats.jobs_submitted += 1
        self.policy.stats.observe_arrival(now)
        self._wake.set()
        return job

    def _queue(self, job: DecodeJob) -> None:
        """Earliest deadline first: a request's later round (its deadline set on arrival) goes
        before later arrivals, not behind them (that wait was the 16-user p95 tail)."""
        at = len(self._waiting)
        while at and self._waiting[at - 1].deadline > job.deadline:
            at -= 1
        self._waiting.insert(at, job)

    def cancel(self, job: DecodeJob, error: BaseException | None = None) -> None:
        """The caller gave up (``error`` None) or its deadline passed: drop the job wherever it
        is. A give-up counts as cancelled, a deadline as failed."""
        if job in self._waiting:
            self._waiting.remove(job)
        if error is None and not job.future.done():
            # Admitted counts as running, also while its rows still wait to join the batch
            # (after an out-of-memory split lowered the ceiling): such a job was counted in
            # neither, and the soak's books did not balance.
            if job.admitted_at is None:
                self.stats.jobs_cancelled_queued += 1
            else:
                self.stats.jobs_cancelled_running += 1
        self._release(job)
        self._fail(job, error or asyncio.CancelledError())
        self._wake.set()

    # --- the loop -------------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = self._clock()
            self._expire(now)
            queued_rows = sum(len(job.pending) for job in self._waiting)
            if not queued_rows and not self._live_rows and not self._drop:
                self._wake.clear()
                await self._wake.wait()
                continue
            oldest = now - min((job.submitted_at for job in self._waiting), default=now)
            decision = self.policy.decide(queued_rows, oldest, self._live_rows)
            if decision.admit == 0 and not self._live_rows and not self._drop:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), decision.wait_s)
                continue
            join = self._admit(decision.admit, now)
            drop, self._drop = self._drop, set()
            started = self._clock()
            try:
                events = await loop.run_in_executor(self._executor, self._runner.step, join, drop)
            except RunnerOutOfMemory:
                self._split_after_oom()
                continue
            except Exception as exc:  # the runner failed: every live job fails with it
                log.exception("runner step failed")
                self._abort_running(GenerationFailed(f"generation failed: {type(exc).__name__}"))
                continue
            step_s = self._clock() - started
            self.policy.stats.observe_step(step_s)
            self.policy.step_succeeded()
            self._metrics.step(self._live_rows, step_s)  # rows finishing now still count
            self.stats.steps += 1
            self.stats.rows_stepped += self._live_rows
            self.stats.max_batch_rows = max(self.stats.max_batch_rows, self._live_rows)
            self._dispatch(events)

    def _admit(self, rows: int, now: float) -> list[RowSpec]:
        join: list[RowSpec] = []
        while rows > 0 and self._waiting:
            job = self._waiting[0]
            while rows > 0 and job.pending:
                spec = job.pending.popleft()
                join.append(spec)
                job.live.add(spec.key)
                rows -= 1
            if job.admitted_at is None:
                job.admitted_at = now
            self._running[job.id] = job
            if not job.pending:
                self._waiting.popleft()
        self._live_rows += len(join)
        return join

    def _expire(self, now: float) -> None:
        for job in [*self._waiting, *self._running.values()]:
            if now >= job.deadline and not job.done:
                self.cancel(job, DeadlineExceeded("the request deadline passed"))

    def _release(self, job: DecodeJob) -> None:
        """Hand the job's live rows to the runner for dropping; forget the job."""
        self._drop |= job.live
        self._live_rows -= len(job.live)
        job.live.clear()
        job.pending.clear()
        self._running.pop(job.id, None)

    def _dispatch(self, events: Sequence[RowEvent]) -> None:
        now = self._clock()
        finished: dict[int, set[int]] = {}  # job id → requests with a row finished now
        for event in events:
            job_id, index, _ = event.key
            job = self._running.get(job_id)
            if job is None or job.done:
                continue
            if job.first_token_at is None:
                job.first_token_at = now
            job.prompt_tokens[index] = event.prompt_tokens
            if job.events is not None:
                job.events.put_nowait(event)
            if event.finish_reason is None:
                continue
            reason: Literal["stop", "length"] = (
                "stop" if event.finish_reason == "stop" else "length"
            )
            job.completions[event.key] = Completion(event.text, event.completion_tokens,
                                                    reason, event.logprob)  # fmt: skip
            job.live.discard(event.key)
            self._live_rows -= 1
            finished.setdefault(job_id, set()).add(index)
        # Settling is judged once every row of the step is in, so which rows count does not
        # depend on their order within the step.
        for job_id, indices in finished.items():
            job = self._running[job_id]
            for index in sorted(indices) if job.settle is not None else ():
                if self._settled(job, index):
                    self._drop_rows(job, index)
            if not job.live and not job.pending:
                self._complete(job, now)

    def _settled(self, job: DecodeJob, index: int) -> bool:
        """Ask the job; a settle that fails is dropped (its rows run on), never the loop."""
        assert job.settle is not None
        try:
            return job.settle(index, job.finished_rows(index))
        except Exception:
            log.exception("a job's settle failed; its rows run to the end")
            job.settle = None
            return False

    def _drop_rows(self, job: DecodeJob, index: int) -> None:
        """Request ``index`` of ``job`` has what it needs: its rows still running leave the
        batch at the next step, its queued rows never start."""
        keys = {key for key in job.live if key[1] == index}
        keys |= {spec.key for spec in job.pending if spec.key[1] == index}
        job.pending = deque(spec for spec in job.pending if spec.key[1] != index)
        self._live_rows -= len(keys & job.live)
        self._drop |= keys & job.live
        job.live -= keys
        if not job.pending and job in self._waiting:
            self._waiting.remove(job)
        self.stats.rows_settled += len(keys)
        if job.events is not None:
            for key in sorted(keys):
                job.events.put_nowait(RowEvent(key, "", "dropped", "", 0, 0))

    def _complete(self, job: DecodeJob, now: float) -> None:
        job.finished_at = now
        self._running.pop(job.id, None)
        self.stats.jobs_completed += 1
        generations = job.generations()
        job.future.set_result(generations)
        self._report(job, generations)
        if self._on_outcome is not None:
            self._on_outcome(job, None)

    def _split_after_oom(self) -> None:
        """Halve the batch ceiling and run the rows again in smaller batches. Rows decode
        from scratch with their own seeds, so results do not change; a stream that already
        sent tokens cannot restart and fails instead. At a ceiling of one row, give up."""
        live = self._live_rows
        self._runner.reset()
        if live <= 1 or self.policy.ceiling <= 1:
            self.stats.oom_failures += 1
            log.warning("out of memory with %d row(s) running; failing them", live)
            self._abort_running(GenerationFailed("the device ran out of memory"))
            return
        self.stats.oom_splits += 1
        self.policy.lower_ceiling(live // 2)
        log.warning("out of memory with %d rows; batch ceiling now %d", live, self.policy.ceiling)
        requeue = []
        for job in list(self._running.values()):
            if job.events is not None and job.first_token_at is not None:
                self._release(job)
                self._fail(job, GenerationFailed("the device ran out of memory mid-stream"))
                continue
            live_specs = sorted((job.specs[key] for key in job.live), key=lambda spec: spec.key)
            job.pending.extendleft(reversed(live_specs))
            job.live.clear()
            self._running.pop(job.id, None)
            if job not in self._waiting:
                requeue.append(job)
        self._waiting.extendleft(reversed(requeue))
        self._live_rows = 0
        self._drop.clear()

    def _report(self, job: DecodeJob, generations: Sequence[Generation]) -> None:
        admitted = job.admitted_at or job.submitted_at
        first = job.first_token_at
        self._metrics.job_done(
            admitted - job.submitted_at,
            None if first is None else first - job.submitted_at,
            sum(g.prompt_tokens for g in generations),
            sum(c.completion_tokens for g in generations for c in g.completions),
        )

    def _abort_running(self, error: Exception) -> None:
        for job in list(self._running.values()):
            self._release(job)
            self._fail(job, error)
        self._drop.clear()
        self._live_rows = 0
        self._runner.reset()

    def _fail(self, job: DecodeJob, error: BaseException) -> None:
        if not job.future.done() and not isinstance(error, asyncio.CancelledError):
            self.stats.jobs_failed += 1
        if job.admitted_at is not None and not job.future.done() and self._on_outcome:
            self._on_outcome(job, error)
        if not job.future.done():
            if isinstance(error, asyncio.CancelledError):
                job.future.cancel()
            else:
                job.future.set_exception(error)
            # Nobody may be waiting on it any more; mark the exception retrieved.
            if not job.future.cancelled():
                job.future.exception()
        if job.events is not None:
            job.events.put_nowait(RowEvent((job.id, -1, -1), "", "cancelled", "", 0, 0))
