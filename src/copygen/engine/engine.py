"""The engine: brief → prompt → runner → post-processing → CopyResult. No HTTP in here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from copygen.config import Settings
from copygen.copywriting.channels import CHANNELS, Channel
from copygen.copywriting.postprocess import Checked, check_completion, deduplicate, select
from copygen.copywriting.prompts import render_prompt
from copygen.copywriting.safety import brand_safety_words
from copygen.domain import (
    CachePolicy,
    ChatMessage,
    CopyBrief,
    CopyResult,
    Generation,
    GenerationRequest,
    SamplingParams,
    Usage,
)
from copygen.engine.batcher import BatchPolicy
from copygen.engine.breaker import BreakerState, CircuitBreaker
from copygen.engine.cache import LeaderGone, Tier, TieredCache, build_cache
from copygen.engine.cachekey import KeyContext, copy_cache_key
from copygen.engine.memory import MemoryGuard, cgroup_limit_bytes
from copygen.engine.protocols import MetricsSink, NullMetrics, RowEvent, Runner, RunnerInfo
from copygen.engine.scheduler import Job, Scheduler
from copygen.errors import (
    CircuitOpen,
    DeadlineExceeded,
    Draining,
    GenerationFailed,
    MemoryPressure,
    NotReady,
)

log = logging.getLogger("copygen.engine")


def _default_rss_high() -> int | None:
    limit = cgroup_limit_bytes()
    return int(limit * 0.9) if limit else None


#: The tenant of requests without an API key.
ANONYMOUS = "anonymous"

WARMUP_REQUEST = GenerationRequest(
    messages=(ChatMessage("user", "Write a three-word slogan for coffee."),),
    sampling=SamplingParams(temperature=0.0, max_new_tokens=4),
)


class Engine:
    """Owns the runner, its one model thread and the scheduler in front of it."""

    def __init__(
        self, settings: Settings, runner: Runner, cache: TieredCache | None = None
    ) -> None:
        self.settings = settings
        self._runner = runner
        self.cache = cache or build_cache(settings)
        banned = brand_safety_words(settings.brand_safety_words)
        self._policy = f"rounds={settings.max_rounds};banned={','.join(sorted(banned))}"
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
        self.cache.l2_breaker_hook(self._breaker_changed)
        self.memory = MemoryGuard(
            rss_high_bytes=settings.memory_high_bytes or _default_rss_high(),
            device_high_ratio=settings.cuda_memory_high_ratio,
            read_device=self.device_stats,
            relieve=self._relieve_memory,
        )
        self._memory_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[object]] = set()
        #: True once shutdown began: readiness fails and new work is refused.
        self.draining = False
        self.degraded_to_cpu = False
        #: Set before start() to receive step and job observations (the app sets Prometheus).
        self.metrics: MetricsSink = NullMetrics()
        self._ready = asyncio.Event()
        self.info: RunnerInfo | None = None
        self.startup_error: str | None = None

    @property
    def model_id(self) -> str:
        return self._runner.model_id

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        """Warm L1 from the shared cache, then load and warm the model. Cache hits are served
        while the model loads. On failure the engine stays not-ready and says why."""
        warmed = await self.cache.start(self.settings.cache_warm_entries)
        if warmed:
            log.info("cache warmed with %d entries from redis", warmed)
        try:
            loop = asyncio.get_running_loop()
            self.info = await loop.run_in_executor(self._executor, self._runner.load)
            self._scheduler = Scheduler(
                self._runner,
                self.policy,
                self._executor,
                max_queue=self.settings.max_queue,
                metrics=self.metrics,
                on_outcome=self._job_outcome,
            )
            self._scheduler.start()
            if self.settings.warmup:
                job = self._scheduler.submit([WARMUP_REQUEST], self.settings.request_timeout_s)
                await job.future
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
        await self.cache.stop()

    async def prefill_cache(self, briefs: Sequence[CopyBrief], chunk: int = 8) -> int:
        """Generate briefs into the cache (those already cached are hits); how many were new."""
        new = 0
        for start in range(0, len(briefs), chunk):
            results = await self.generate_copy_many(briefs[start : start + chunk])
            new += sum(1 for result in results if not result.cached)
        return new

    @property
    def accepting(self) -> bool:
        """Ready for traffic: warm, not draining, the model breaker not open."""
        return self.ready and not self.draining and self.breaker.state is not BreakerState.OPEN

    def breakers(self) -> list[CircuitBreaker]:
        l2 = self.cache.l2
        return [self.breaker, l2.breaker] if l2 is not None else [self.breaker]

    def _job_outcome(self, job: Job, error: BaseException | None) -> None:
        """Feed the model breaker: runner failures and deadlines count, cancellations do not."""
        if error is None:
            self.breaker.success()
        elif isinstance(error, GenerationFailed | DeadlineExceeded):
            self.breaker.failure()

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        log.warning("breaker %s: %s -> %s", name, old.value, new.value)
        self.metrics.breaker_changed(name, new.value)
        if name == "model" and new is BreakerState.OPEN:
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
        while True:
            self.memory.check()
            await asyncio.sleep(every_s)

    def device_stats(self) -> dict[str, float]:
        return self._runner.device_stats() if self.info is not None else {}

    def stats(self) -> dict[str, float | int]:
        """Queue and batching figures for /health and the benchmark."""
        scheduler = self._scheduler
        if scheduler is None:
            return {}
        s = scheduler.stats
        return {
            "queued_jobs": scheduler.queued_jobs,
            "running_rows": scheduler.running_rows,
            "steps": s.steps,
            "forward_passes": self._runner.forward_passes_total,
            "draft_tokens": self._runner.drafted_tokens_total,
            "draft_tokens_accepted": self._runner.accepted_tokens_total,
            "mean_batch_rows": round(s.rows_stepped / s.steps, 2) if s.steps else 0.0,
            "max_batch_rows": s.max_batch_rows,
            "jobs_submitted": s.jobs_submitted,
            "jobs_completed": s.jobs_completed,
            "jobs_cancelled_queued": s.jobs_cancelled_queued,
            "jobs_cancelled_running": s.jobs_cancelled_running,
            "jobs_rejected": s.jobs_rejected,
            "jobs_failed": s.jobs_failed,
            "oom_splits": s.oom_splits,
            "oom_failures": s.oom_failures,
            "batch_ceiling": self.policy.ceiling,
        }

    def _submit(
        self, requests: Sequence[GenerationRequest], timeout_s: float, *, stream: bool = False
    ) -> Job:
        """Refuse cheaply first (cold, draining, breaker open, memory high), then queue."""
        if not self.ready or self._scheduler is None:
            raise NotReady("the model is still loading; retry shortly")
        if self.draining:
            raise Draining("the service is shutting down; retry on another replica")
        if self.memory.shedding:
            raise MemoryPressure("memory is high; retry shortly")
        if not self.breaker.allow():
            retry = max(1, math.ceil(self.breaker.retry_after_s()))
            raise CircuitOpen(
                "generation is paused after repeated model failures", retry_after_s=retry
            )
        return self._scheduler.submit(requests, timeout_s, stream=stream)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Run raw generation requests within the request deadline."""
        generations, _, _ = await self._generate_timed(requests, self.settings.request_timeout_s)
        return generations

    async def _generate_timed(
        self,
        requests: Sequence[GenerationRequest],
        timeout_s: float,
        on_event: Callable[[RowEvent], None] | None = None,
    ) -> tuple[list[Generation], dict[str, float], int]:
        if on_event is None:
            job = self._submit(requests, timeout_s)
            generations = await self._wait(job, timeout_s)
            return generations, job_timings(job), job.id
        stream = self.open_stream(requests, timeout_s)
        async with contextlib.aclosing(stream.events()) as events:
            async for event in events:
                on_event(event)
        return stream.job.generations(), job_timings(stream.job), stream.job.id

    async def _wait(self, job: Job, timeout_s: float) -> list[Generation]:
        assert self._scheduler is not None
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(job.future)
        except TimeoutError as exc:
            self._scheduler.cancel(job, DeadlineExceeded("deadline"))
            raise DeadlineExceeded(
                f"generation did not finish within {self.settings.request_timeout_s:g} s"
            ) from exc
        except asyncio.CancelledError:
            self._scheduler.cancel(job)
            raise

    def open_stream(
        self, requests: Sequence[GenerationRequest], timeout_s: float | None = None
    ) -> TokenStream:
        """Submit now (so a full queue or a cold model fail before any byte is sent) and
        return a stream of every row's token deltas."""
        timeout_s = timeout_s or self.settings.request_timeout_s
        job = self._submit(requests, timeout_s, stream=True)
        assert self._scheduler is not None
        return TokenStream(self._scheduler, job, timeout_s)

    async def generate_copy(
        self,
        brief: CopyBrief,
        on_event: Callable[[int, RowEvent], None] | None = None,
        *,
        tenant: str = ANONYMOUS,
    ) -> CopyResult:
        """Write ``brief.variants`` variants, each checked against the brief's channel.
        ``on_event(round, event)`` sees every draft token as it is decoded."""
        [result] = await self.generate_copy_many([brief], on_event, tenant=tenant)
        return result

    def copy_from_l1(self, brief: CopyBrief, tenant: str) -> CopyResult | None:
        """This brief's copy when L1 holds it, without waiting on anything (the fast path)."""
        started = time.perf_counter()
        result = self.cache.peek_l1(copy_cache_key(brief, self.key_context(tenant)))
        return None if result is None else _served(result, started, cached=True, tier="l1")

    def key_context(self, tenant: str) -> KeyContext:
        return KeyContext(tenant, self.model_id, self._runner.revision, self._policy)

    async def generate_copy_many(
        self,
        briefs: Sequence[CopyBrief],
        on_event: Callable[[int, RowEvent], None] | None = None,
        *,
        tenant: str = ANONYMOUS,
    ) -> list[CopyResult]:
        """Copy for several briefs: cache hits first, then one shared generation for the rest.

        Each brief's ``cache`` policy applies: ``use`` reads and writes the cache and shares a
        generation with identical briefs already in flight (here, or on another replica through
        a Redis lock); ``refresh`` skips the read; ``bypass`` neither reads nor writes.
        Streaming callers (``on_event``) never join another request's generation.
        """
        started = time.perf_counter()
        context = self.key_context(tenant)
        keys = [copy_cache_key(brief, context) for brief in briefs]
        results: list[CopyResult | None] = [None] * len(briefs)
        for i, (brief, key) in enumerate(zip(briefs, keys, strict=True)):
            if brief.cache is CachePolicy.USE and (hit := await self.cache.get(key)) is not None:
                results[i] = _served(hit[0], started, cached=True, tier=hit[1])

        flights = self.cache.flights
        following: dict[int, asyncio.Future[CopyResult]] = {}
        writing: list[int] = []
        leading: set[int] = set()
        for i, brief in enumerate(briefs):
            if results[i] is not None:
                continue
            if brief.cache is CachePolicy.USE and on_event is None:
                if (future := flights.follow(keys[i])) is not None:
                    following[i] = future
                    continue
                flights.lead(keys[i])
                leading.add(i)
            writing.append(i)

        locks: dict[int, str] = {}
        try:
            if leading and self.cache.l2 is not None:
                writing = await self._claim_across_replicas(writing, leading, keys, results, locks)
            if writing:
                written = await self._write_copy([briefs[i] for i in writing], on_event, started)
                for i, result in zip(writing, written, strict=True):
                    results[i] = result
                    if briefs[i].cache is not CachePolicy.BYPASS:
                        await self.cache.set(keys[i], result)
                    if i in leading:
                        flights.finish(keys[i], result, None)
        except BaseException as exc:
            for i in leading:
                flights.finish(keys[i], None, exc)
            raise
        finally:
            for i, token in locks.items():
                await self.cache.unlock(keys[i], token)

        for i, future in following.items():
            try:
                results[i] = _served(await asyncio.shield(future), started, cached=False)
            except LeaderGone:
                [results[i]] = await self.generate_copy_many([briefs[i]], tenant=tenant)
        return [result for result in results if result is not None]

    async def _claim_across_replicas(
        self,
        writing: list[int],
        leading: set[int],
        keys: Sequence[str],
        results: list[CopyResult | None],
        locks: dict[int, str],
    ) -> list[int]:
        """Take the Redis generation lock for each leading key. Keys another replica is already
        generating are awaited in L2 instead; the indices still to write are returned."""
        claims = await asyncio.gather(*(self.cache.lock(keys[i]) for i in leading))
        busy = []
        for i, claim in zip(leading, claims, strict=True):
            if isinstance(claim, str):
                locks[i] = claim
            elif claim is None:
                busy.append(i)
        budget_s = self.settings.request_timeout_s
        peers = await asyncio.gather(*(self.cache.wait_for_peer(keys[i], budget_s) for i in busy))
        for i, result in zip(busy, peers, strict=True):
            if result is not None:
                results[i] = _served(result, time.perf_counter(), cached=True, tier="l2")
                self.cache.flights.finish(keys[i], result, None)
        return [i for i in writing if results[i] is None]

    async def _write_copy(
        self,
        briefs: Sequence[CopyBrief],
        on_event: Callable[[int, RowEvent], None] | None,
        started: float,
    ) -> list[CopyResult]:
        """Generate, in rounds that share runner calls across the briefs.

        Round 1 samples about twice as many rows as variants wanted. Later rounds regenerate
        only the slots still missing a variant that passes every rule, while the request
        deadline leaves time for another round (judged by the last round's duration).
        """
        budget_s = self.settings.request_timeout_s
        banned_always = brand_safety_words(self.settings.brand_safety_words)
        works = [_BriefWork.new(brief, banned_always) for brief in briefs]
        timings = {"queue": 0.0, "generation": 0.0}
        rounds = 0
        last_round_s = 0.0
        jobs: list[int] = []
        while rounds < self.settings.max_rounds:
            pending = [w for w in works if w.needed() > 0]
            elapsed = time.perf_counter() - started
            if not pending or (rounds and elapsed + last_round_s > budget_s):
                break
            round_started = time.perf_counter()
            requests = [w.request(rounds) for w in pending]
            try:
                forward = None if on_event is None else functools.partial(on_event, rounds)
                generations, round_timings, job_id = await self._generate_timed(
                    requests, budget_s - elapsed, forward
                )
                jobs.append(job_id)
            except DeadlineExceeded:
                if rounds == 0:
                    raise
                break
            for work, generation in zip(pending, generations, strict=True):
                work.absorb(generation)
            timings["queue"] += round_timings["queue"]
            timings["generation"] += round_timings["generation"]
            if "first_token" in round_timings:  # measured from the request's start
                offset = (round_started - started) * 1000
                timings.setdefault("first_token", offset + round_timings["first_token"])
            rounds += 1
            last_round_s = time.perf_counter() - round_started
        timings["total"] = (time.perf_counter() - started) * 1000
        timings = {key: round(value, 2) for key, value in timings.items()}
        return [work.result(self.model_id, rounds, timings, tuple(jobs)) for work in works]


def _served(
    result: CopyResult, started: float, *, cached: bool, tier: Tier | None = None
) -> CopyResult:
    """A stored or shared result as this request's answer: its own id and timings; usage is
    zero because this request computed no tokens."""
    total_ms = round((time.perf_counter() - started) * 1000, 3)
    return CopyResult(
        id=f"copy-{os.urandom(16).hex()}",  # uuid4's randomness without building a UUID
        model=result.model,
        channel=result.channel,
        variants=result.variants,
        requested=result.requested,
        rounds=result.rounds,
        cached=cached,
        cache_tier=tier,
        usage=_NO_USAGE if cached else result.usage,
        timings_ms={"cache": total_ms, "total": total_ms} if cached else {"total": total_ms},
    )


_NO_USAGE = Usage()


#: Rows sampled per brief and round: enough spares that a few failures still fill the slots.
OVERSAMPLE = 2
MAX_ROWS_PER_BRIEF = 20
_SEED_STRIDE = 1_000_003


@dataclass(slots=True)
class _BriefWork:
    """One brief's progress across rounds: every checked candidate so far."""

    brief: CopyBrief
    channel: Channel
    banned: tuple[str, ...]
    messages: tuple[ChatMessage, ...]
    checked: list[Checked] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def new(cls, brief: CopyBrief, banned_always: tuple[str, ...]) -> _BriefWork:
        return cls(
            brief=brief,
            channel=CHANNELS[brief.channel],
            banned=(*brief.banned_words, *banned_always),
            messages=render_prompt(brief),
        )

    def needed(self) -> int:
        perfect = deduplicate(c.variant for c in self.checked if c.perfect)
        return max(0, self.brief.variants - len(perfect))

    def request(self, round_index: int) -> GenerationRequest:
        """Round 1 samples freely. Later rounds prime the answer with a required keyword
        (the model continues from it), since a missing keyword is the most common reason a
        small model's variant fails."""
        brief = self.brief
        seed = None
        if brief.seed is not None:
            seed = (brief.seed + round_index * _SEED_STRIDE) % 2**63
        prefix = ""
        if round_index > 0 and brief.keywords:
            keyword = brief.keywords[(round_index - 1) % len(brief.keywords)]
            prefix = keyword[:1].upper() + keyword[1:] if keyword.islower() else keyword
        return GenerationRequest(
            messages=self.messages,
            sampling=SamplingParams(
                temperature=brief.temperature,
                top_p=brief.top_p,
                top_k=brief.top_k,
                repetition_penalty=brief.repetition_penalty,
                max_new_tokens=brief.max_new_tokens or self.channel.max_new_tokens,
                seed=seed,
            ),
            n=min(MAX_ROWS_PER_BRIEF, OVERSAMPLE * self.needed()),
            prefix=prefix,
        )

    def absorb(self, generation: Generation) -> None:
        self.prompt_tokens += generation.prompt_tokens
        for completion in generation.completions:
            self.completion_tokens += completion.completion_tokens
            checked = check_completion(
                completion.text,
                completion.finish_reason == "length",
                self.channel,
                self.brief.keywords,
                self.brief.max_chars,
                self.banned,
            )
            if checked is not None:
                self.checked.append(checked)

    def result(
        self, model_id: str, rounds: int, timings: dict[str, float], jobs: tuple[int, ...]
    ) -> CopyResult:
        return CopyResult(
            id=f"copy-{uuid.uuid4().hex}",
            model=model_id,
            channel=self.channel.id,
            variants=select(self.checked, self.brief.variants),
            requested=self.brief.variants,
            rounds=rounds,
            usage=Usage(self.prompt_tokens, self.completion_tokens),
            timings_ms=dict(timings),
            jobs=jobs,
        )


def job_timings(job: Job) -> dict[str, float]:
    admitted = job.admitted_at or job.submitted_at
    finished = job.finished_at or admitted
    timings = {
        "queue": (admitted - job.submitted_at) * 1000,
        "generation": (finished - admitted) * 1000,
    }
    if job.first_token_at is not None:
        timings["first_token"] = (job.first_token_at - job.submitted_at) * 1000
    return timings


class TokenStream:
    """Token deltas of one submitted job. Closing it early (a client that went away) drops
    the job: queued rows never start, running rows leave the batch at the next step."""

    def __init__(self, scheduler: Scheduler, job: Job, timeout_s: float) -> None:
        self._scheduler = scheduler
        self.job = job
        self._deadline = time.monotonic() + timeout_s
        self._timeout_s = timeout_s

    async def events(self) -> AsyncGenerator[RowEvent, None]:
        job = self.job
        assert job.events is not None
        rows_left = job.rows
        try:
            while rows_left:
                async with asyncio.timeout(max(0.0, self._deadline - time.monotonic())):
                    event = await job.events.get()
                if event.finish_reason == "cancelled":
                    job.future.result()  # raises the job's error
                    return
                if event.finish_reason is not None:
                    rows_left -= 1
                yield event
        except TimeoutError as exc:
            self._scheduler.cancel(job, DeadlineExceeded("deadline"))
            raise DeadlineExceeded(
                f"generation did not finish within {self._timeout_s:g} s"
            ) from exc
        finally:
            if not job.done:
                self._scheduler.cancel(job)
