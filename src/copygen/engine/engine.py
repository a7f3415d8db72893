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
from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.postprocess import postprocess
from copygen.copywriting.prompts import render_prompt
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
        generations, _ = await self._generate_timed(requests)
        return generations

    async def _generate_timed(
        self, requests: Sequence[GenerationRequest]
    ) -> tuple[list[Generation], dict[str, float]]:
        if not self.ready:
            raise NotReady("the model is still loading; retry shortly")
        job = _Job()
        submitted = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
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
            "queue": round((started - submitted) * 1000, 2),
            "generation": round((finished - started) * 1000, 2),
        }
        return generations, timings

    async def generate_copy(self, brief: CopyBrief) -> CopyResult:
        """Write ``brief.variants`` variants, checked against the brief's channel."""
        started = time.perf_counter()
        channel = CHANNELS[brief.channel]
        request = GenerationRequest(
            messages=render_prompt(brief),
            sampling=SamplingParams(
                temperature=brief.temperature,
                top_p=brief.top_p,
                top_k=brief.top_k,
                repetition_penalty=brief.repetition_penalty,
                max_new_tokens=brief.max_new_tokens or channel.max_new_tokens,
                seed=brief.seed,
            ),
            n=brief.variants,
        )
        [generation], timings = await self._generate_timed([request])
        variants = postprocess(
            ((c.text, c.finish_reason == "length") for c in generation.completions),
            channel,
            brief.keywords,
            brief.max_chars,
        )
        timings["total"] = round((time.perf_counter() - started) * 1000, 2)
        return CopyResult(
            id=f"copy-{uuid.uuid4().hex}",
            model=self.model_id,
            channel=channel.id,
            variants=variants[: brief.variants],
            requested=brief.variants,
            usage=Usage(
                prompt_tokens=generation.prompt_tokens,
                completion_tokens=sum(c.completion_tokens for c in generation.completions),
            ),
            timings_ms=timings,
        )
