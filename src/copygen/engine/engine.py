"""The engine: brief → prompt → runner → post-processing → CopyResult. No HTTP in here."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from copygen.config import Settings
from copygen.copywriting.channels import CHANNELS, Channel
from copygen.copywriting.postprocess import Checked, check_completion, deduplicate, select
from copygen.copywriting.prompts import render_prompt
from copygen.copywriting.safety import brand_safety_words
from copygen.domain import (
    ChatMessage,
    CopyBrief,
    CopyResult,
    Generation,
    GenerationRequest,
    SamplingParams,
    Usage,
)
from copygen.engine.protocols import Runner, RunnerInfo
from copygen.errors import DeadlineExceeded, NotReady

log = logging.getLogger("copygen.engine")

T = TypeVar("T")

WARMUP_REQUEST = GenerationRequest(
    messages=(ChatMessage("user", "Write a three-word slogan for coffee."),),
    sampling=SamplingParams(temperature=0.0, max_new_tokens=4),
)


@dataclass(slots=True)
class _Job:
    """Work handed to the model thread; ``cancelled`` lets a caller that gave up skip it."""

    cancelled: bool = False
    started_at: float | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Engine:
    """Owns the runner and the model thread. ``start`` loads and warms the model."""

    def __init__(self, settings: Settings, runner: Runner) -> None:
        self.settings = settings
        self._runner = runner
        # One model thread: torch already uses every core for one forward pass, and the
        # model is not safe to call from two threads at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copygen-model")
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
        """Load and warm the model. On failure the engine stays not-ready and says why."""
        try:
            self.info = await self._run(self._runner.load, _Job())
            if self.settings.warmup:
                await self._run(lambda: self._runner.generate([WARMUP_REQUEST]), _Job())
        except Exception as exc:
            self.startup_error = f"{type(exc).__name__}: {exc}"
            log.exception("engine start failed")
            raise
        self._ready.set()
        log.info("engine ready")

    async def stop(self) -> None:
        self._ready.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[[], T], job: _Job) -> T:
        def guarded() -> T:
            if job.cancelled:
                raise asyncio.CancelledError("the caller gave up before the job started")
            job.started_at = time.perf_counter()
            return fn()

        return await asyncio.get_running_loop().run_in_executor(self._executor, guarded)

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Run raw generation requests within the request deadline."""
        generations, _ = await self._generate_timed(requests, self.settings.request_timeout_s)
        return generations

    async def _generate_timed(
        self, requests: Sequence[GenerationRequest], timeout_s: float
    ) -> tuple[list[Generation], dict[str, float]]:
        if not self.ready:
            raise NotReady("the model is still loading; retry shortly")
        job = _Job()
        submitted = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                generations = await self._run(lambda: self._runner.generate(requests), job)
        except TimeoutError as exc:
            job.cancelled = True
            raise DeadlineExceeded(
                f"generation did not finish within {self.settings.request_timeout_s:g} s"
            ) from exc
        except asyncio.CancelledError:
            job.cancelled = True
            raise
        finished = time.perf_counter()
        started = job.started_at or submitted
        timings = {
            "queue": (started - submitted) * 1000,
            "generation": (finished - started) * 1000,
        }
        return generations, timings

    async def generate_copy(self, brief: CopyBrief) -> CopyResult:
        """Write ``brief.variants`` variants, each checked against the brief's channel."""
        [result] = await self.generate_copy_many([brief])
        return result

    async def generate_copy_many(self, briefs: Sequence[CopyBrief]) -> list[CopyResult]:
        """Write copy for several briefs at once; every round is one shared runner call.

        Round 1 samples about twice as many rows as variants wanted. Later rounds regenerate
        only the slots still missing a variant that passes every rule, while the request
        deadline leaves time for another round (judged by the last round's duration).
        """
        started = time.perf_counter()
        budget_s = self.settings.request_timeout_s
        banned_always = brand_safety_words(self.settings.brand_safety_words)
        works = [_BriefWork.new(brief, banned_always) for brief in briefs]
        timings = {"queue": 0.0, "generation": 0.0}
        rounds = 0
        last_round_s = 0.0
        while rounds < self.settings.max_rounds:
            pending = [w for w in works if w.needed() > 0]
            elapsed = time.perf_counter() - started
            if not pending or (rounds and elapsed + last_round_s > budget_s):
                break
            round_started = time.perf_counter()
            requests = [w.request(rounds) for w in pending]
            try:
                generations, round_timings = await self._generate_timed(
                    requests, budget_s - elapsed
                )
            except DeadlineExceeded:
                if rounds == 0:
                    raise
                break
            for work, generation in zip(pending, generations, strict=True):
                work.absorb(generation)
            for key, value in round_timings.items():
                timings[key] += value
            rounds += 1
            last_round_s = time.perf_counter() - round_started
        timings["total"] = (time.perf_counter() - started) * 1000
        timings = {key: round(value, 2) for key, value in timings.items()}
        return [work.result(self.model_id, rounds, timings) for work in works]


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

    def result(self, model_id: str, rounds: int, timings: dict[str, float]) -> CopyResult:
        return CopyResult(
            id=f"copy-{uuid.uuid4().hex}",
            model=model_id,
            channel=self.channel.id,
            variants=select(self.checked, self.brief.variants),
            requested=self.brief.variants,
            rounds=rounds,
            usage=Usage(self.prompt_tokens, self.completion_tokens),
            timings_ms=dict(timings),
        )
