"""The running service: built once at start-up, it owns the cache, the generators, the brand
store, the job runner, the profiler, the drain state every generator's admission gate reads,
and the copy workflow on top of them. Routes, middleware and metrics reach those parts through
it (api/deps.py), never through the workflow. Like vLLM's ``EngineCore``: the place lifecycles
live, not a place logic lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from copygen.cache.tiered import TieredCache, build_cache
from copygen.config import Settings
from copygen.copywriting.lexicon import english_words
from copygen.deadline import Deadline
from copygen.domain import CopyBrief
from copygen.generation import Generator, MetricsSink, NullMetrics
from copygen.observability.profiling import Profiler
from copygen.resilience.admission import Drain
from copygen.resilience.breaker import BreakerState, CircuitBreaker
from copygen.service.brands import BrandBook
from copygen.service.generators import Generators
from copygen.service.jobs import JobRunner
from copygen.service.workflow import CopyWorkflow

log = logging.getLogger("copygen.runtime")

#: Briefs of a warm-up file generated together.
PREGENERATE_CHUNK = 8


class Runtime:
    """Everything one copygen process runs, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        generators: Generators,
        cache: TieredCache,
        book: BrandBook | None = None,
        *,
        metrics: MetricsSink | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.settings = settings
        self.generators = generators
        self.cache = cache
        self.book = book
        self.metrics = metrics or NullMetrics()
        self.drain = drain or Drain()
        for generator in generators.all:
            generator.gate.drain = self.drain
            generator.metrics = self.metrics
        for breaker in self.breakers():
            breaker.listen(self._breaker_changed)
        self.workflow = CopyWorkflow(settings, cache, generators, book)
        #: Background batches (None without a database).
        self.jobs = JobRunner(self.workflow, book, settings) if book is not None else None
        #: On-demand profiles of this process (POST /v1/admin/profile).
        self.profiler = Profiler()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: Generator | None = None,
        *,
        metrics: MetricsSink | None = None,
        drain: Drain | None = None,
    ) -> Runtime:
        """The runtime the settings describe; ``engine`` replaces the generators (tests)."""
        return cls(
            settings,
            Generators.from_settings(settings, engine),
            build_cache(settings),
            BrandBook.from_settings(settings),
            metrics=metrics,
            drain=drain,
        )

    @property
    def default(self) -> Generator:
        """The generator that writes every channel not routed elsewhere (and OpenAI calls)."""
        return self.generators.default

    def deadline(self, caller_timeout_s: float | None = None) -> Deadline:
        """A request's deadline, made where it enters: COPYGEN_REQUEST_TIMEOUT_S from now, or
        the caller's own timeout when that is sooner."""
        return Deadline.within(self.settings.request_timeout_s).tightened(caller_timeout_s)

    def breakers(self) -> list[CircuitBreaker]:
        """Every circuit breaker: each generator's, then Redis's."""
        own = [generator.gate.breaker for generator in self.generators.all]
        l2 = self.cache.l2
        return [*own, l2.breaker] if l2 is not None else own

    @property
    def draining(self) -> bool:
        return self.drain.active

    def begin_drain(self) -> None:
        """Readiness fails and new work is refused from now on (SIGTERM), by every generator."""
        self.drain.begin()

    async def start_jobs(self) -> None:
        """The job runner takes jobs once the model is ready and the database migrated."""
        if self.jobs is not None:
            await self.jobs.start()

    async def start(self) -> None:
        """Warm L1 from the shared cache, then start the generators. Cache hits are served
        while the model loads. The grounding lexicon loads alongside (0.2 s, once), so the
        first brief does not pay for it."""
        warmed = await self.cache.start(self.settings.cache_warm_entries)
        if warmed:
            log.info("cache warmed with %d entries from redis", warmed)
        lexicon = asyncio.create_task(asyncio.to_thread(english_words), name="copygen-lexicon")
        if self.book is not None:
            await self.book.start()
        await asyncio.gather(*(generator.start() for generator in self.generators.all))
        await lexicon

    async def stop(self) -> None:
        if self.jobs is not None:
            await self.jobs.stop()
        for generator in self.generators.all:
            await generator.stop()
        await self.cache.stop()
        if self.book is not None:
            await self.book.stop()

    async def pregenerate(self, briefs: Sequence[CopyBrief]) -> int:
        """Generate briefs into the cache (those already cached are hits), a chunk at a time,
        each chunk with its own deadline; how many were new."""
        new = 0
        for start in range(0, len(briefs), PREGENERATE_CHUNK):
            chunk = briefs[start : start + PREGENERATE_CHUNK]
            results = await self.workflow.generate_many(chunk, self.deadline())
            new += sum(1 for result in results if not result.cached)
        return new

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        self.metrics.breaker_changed(name, new.value)
