"""The copywriter: one brief (or many) in, checked and ranked copy out.

It looks in the result cache (L1, then Redis), shares identical generations (single-flight in
this process, a short Redis lock across replicas), runs the generation rounds on the engine
(each round regenerates only the slots still failing the brief's rules, within the request
deadline) and caches what it wrote. Routes, the CLI and the cache warm-up use only this.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from copygen.auth import ANONYMOUS
from copygen.backends.remote import RemoteBackend
from copygen.cache.keys import KeyContext, copy_cache_key
from copygen.cache.singleflight import LeaderGone
from copygen.cache.tiered import Tier, TieredCache, build_cache
from copygen.config import Settings
from copygen.copywriting.lexicon import english_words
from copygen.copywriting.rounds import BriefRounds
from copygen.copywriting.safety import brand_safety_words
from copygen.domain import CachePolicy, Completion, CopyBrief, CopyResult, Usage, new_copy_id
from copygen.engine.engine import Engine
from copygen.errors import CopygenError, DeadlineExceeded
from copygen.generation import Generator, MetricsSink, RowEvent
from copygen.resilience.breaker import CircuitBreaker
from copygen.service.brands import BrandBook

log = logging.getLogger("copygen.copywriter")

#: ``on_event(round, event)``: a draft token of some row in some round.
DraftHook = Callable[[int, RowEvent], None]


class Copywriter:
    """Owns the result cache and writes copy with the engine."""

    def __init__(
        self,
        settings: Settings,
        engine: Generator,
        cache: TieredCache,
        routes: Mapping[str, Generator] | None = None,
        book: BrandBook | None = None,
    ) -> None:
        self.settings = settings
        #: Brands and feedback (None: a copywriter without a database, in tests).
        self.book = book
        self.engine = engine
        #: Channels another generator writes (COPYGEN_BACKEND_ROUTES); the rest: ``engine``.
        self.routes = dict(routes or {})
        self.cache = cache
        self._banned_always = brand_safety_words(settings.brand_safety_words)
        self._policy = (
            f"rounds={settings.max_rounds};banned={','.join(sorted(self._banned_always))}"
            f";grounding={settings.grounding};relevance={settings.relevance}"
            f";early_stop={settings.early_stop}"
        )
        cache.l2_breaker_hook(engine.breaker_changed)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Generator | None = None) -> Copywriter:
        """The copywriter the settings describe: the given generator, else a remote backend
        when COPYGEN_BACKEND_URL is set, else the in-process engine; with
        COPYGEN_BACKEND_ROUTES, the in-process engine and the backend for those channels."""
        cache = build_cache(settings)
        book = BrandBook.from_settings(settings)
        if engine is not None:
            return cls(settings, engine, cache, book=book)
        if not settings.backend_url:
            return cls(settings, Engine.from_settings(settings), cache, book=book)
        backend = RemoteBackend(settings)
        routed = settings.backend_route_channels
        if not routed:
            return cls(settings, backend, cache, book=book)
        routes: dict[str, Generator] = dict.fromkeys(routed, backend)
        return cls(settings, Engine.from_settings(settings), cache, routes, book)

    @property
    def generators(self) -> list[Generator]:
        """Every generator, the default one first."""
        return list(dict.fromkeys([self.engine, *self.routes.values()]))

    def generator_for(self, channel: str) -> Generator:
        return self.routes.get(channel, self.engine)

    def observe(self, metrics: MetricsSink) -> None:
        for generator in self.generators:
            generator.metrics = metrics

    async def start(self) -> None:
        """Warm L1 from the shared cache, then start the engine. Cache hits are served while
        the model loads. The grounding lexicon loads alongside (0.2 s, once), so the first
        brief does not pay for it."""
        warmed = await self.cache.start(self.settings.cache_warm_entries)
        if warmed:
            log.info("cache warmed with %d entries from redis", warmed)
        lexicon = asyncio.create_task(asyncio.to_thread(english_words), name="copygen-lexicon")
        if self.book is not None:
            await self.book.start()
        await asyncio.gather(*(generator.start() for generator in self.generators))
        await lexicon

    async def stop(self) -> None:
        for generator in self.generators:
            await generator.stop()
        await self.cache.stop()
        if self.book is not None:
            await self.book.stop()

    def breakers(self) -> list[CircuitBreaker]:
        l2 = self.cache.l2
        own = [generator.breaker for generator in self.generators]
        return [*own, l2.breaker] if l2 is not None else own

    async def prefill(self, briefs: Sequence[CopyBrief], chunk: int = 8) -> int:
        """Generate briefs into the cache (those already cached are hits); how many were new."""
        new = 0
        for start in range(0, len(briefs), chunk):
            results = await self.generate_many(briefs[start : start + chunk])
            new += sum(1 for result in results if not result.cached)
        return new

    async def generate(
        self,
        brief: CopyBrief,
        on_event: DraftHook | None = None,
        *,
        tenant: str = ANONYMOUS,
    ) -> CopyResult:
        """Write ``brief.variants`` variants, each checked against the brief's channel.
        ``on_event(round, event)`` sees every draft token as it is decoded."""
        [result] = await self.generate_many([brief], on_event, tenant=tenant)
        return result

    def from_l1(self, brief: CopyBrief, tenant: str) -> CopyResult | None:
        """This brief's copy when L1 holds it, without waiting on anything (the fast path)."""
        started = time.perf_counter()
        result = self.cache.peek_l1(copy_cache_key(brief, self.key_context(tenant, brief.channel)))
        if result is None:
            return None
        served = _served(result, started, cached=True, tier="l1")
        if self.book is not None:
            self.book.remember(tenant, [brief], [served])
        return served

    def key_context(self, tenant: str, channel: str = "") -> KeyContext:
        """What besides the brief a cache key names: the tenant, and the model (and where it
        runs) that writes this channel."""
        generator = self.generator_for(channel)
        return KeyContext(tenant, generator.model_id, generator.revision, self._policy)

    async def generate_many(
        self,
        briefs: Sequence[CopyBrief],
        on_event: DraftHook | None = None,
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
        keys = [copy_cache_key(brief, self.key_context(tenant, brief.channel)) for brief in briefs]
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
                [results[i]] = await self.generate_many([briefs[i]], tenant=tenant)
        answered = [result for result in results if result is not None]
        if self.book is not None:
            asked = [brief for brief, result in zip(briefs, results, strict=True) if result]
            self.book.remember(tenant, asked, answered)
        return answered

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
        on_event: DraftHook | None,
        started: float,
    ) -> list[CopyResult]:
        """Each generator's briefs in their own rounds, the generators concurrently."""
        groups: dict[int, tuple[Generator, list[int]]] = {}
        for i, brief in enumerate(briefs):
            generator = self.generator_for(brief.channel)
            groups.setdefault(id(generator), (generator, []))[1].append(i)
        written = await asyncio.gather(
            *(
                self._rounds(generator, [briefs[i] for i in group], on_event, started)
                for generator, group in groups.values()
            )
        )
        results: list[CopyResult | None] = [None] * len(briefs)
        for (_, group), group_results in zip(groups.values(), written, strict=True):
            for i, result in zip(group, group_results, strict=True):
                results[i] = result
        return [result for result in results if result is not None]

    async def _rounds(
        self,
        generator: Generator,
        briefs: Sequence[CopyBrief],
        on_event: DraftHook | None,
        started: float,
    ) -> list[CopyResult]:
        """Generate, in rounds that share runner calls across the briefs.

        Round 1 samples about twice as many rows as variants wanted. Later rounds regenerate
        only the slots still missing a variant that passes every rule, while the request
        deadline leaves time for another round (judged by the last round's duration). With
        ``early_stop`` a brief's rows stop once enough distinct variants pass every rule.
        """
        budget_s = self.settings.request_timeout_s
        works = [
            BriefRounds.new(brief, self._banned_always, self.settings.grounding) for brief in briefs
        ]
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
            settle = None
            if self.settings.early_stop:
                settle = functools.partial(_settled, pending)
            try:
                forward = None if on_event is None else functools.partial(on_event, rounds)
                finished = await generator.run(
                    requests, budget_s - elapsed, forward, follow_up=rounds > 0, settle=settle
                )
                jobs.append(finished.job_id)
            except DeadlineExceeded:
                if rounds == 0:
                    raise
                break
            for work, generation in zip(pending, finished.generations, strict=True):
                work.absorb(generation)
            round_timings = finished.timings_ms
            timings["queue"] += round_timings["queue"]
            timings["generation"] += round_timings["generation"]
            if "first_token" in round_timings:  # measured from the request's start
                offset = (round_started - started) * 1000
                timings.setdefault("first_token", offset + round_timings["first_token"])
            rounds += 1
            last_round_s = time.perf_counter() - round_started
        relevance: list[dict[str, float]] = [{} for _ in works]
        if self.settings.relevance:
            scoring_started = time.perf_counter()
            relevance = await self._relevance(generator, works)
            timings["relevance"] = (time.perf_counter() - scoring_started) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        timings = {key: round(value, 2) for key, value in timings.items()}
        model_id = generator.model_id
        return [
            work.result(model_id, rounds, timings, tuple(jobs), scores)
            for work, scores in zip(works, relevance, strict=True)
        ]

    async def _relevance(
        self, generator: Generator, works: Sequence[BriefRounds]
    ) -> list[dict[str, float]]:
        """Per brief, text → how much the brief raises the model's likelihood of the text
        (nats per token), for each brief's shortlist, in one scoring pass. Ranking without
        it is still a ranking: on any failure the briefs get none."""
        shortlists = [work.shortlist() for work in works]
        requests = [r for work, texts in zip(works, shortlists, strict=True)
                    for r in work.scoring(texts)]  # fmt: skip
        if not requests:
            return [{} for _ in works]
        try:
            scores = await generator.score(requests)
        except CopygenError as exc:
            log.warning("relevance scoring skipped: %s", exc.type)
            return [{} for _ in works]
        result, position = [], 0
        for texts in shortlists:
            end = position + 2 * len(texts)
            result.append(BriefRounds.relevance(texts, scores[position:end]))
            position = end
        return result


def _settled(works: Sequence[BriefRounds], index: int, finished: Sequence[Completion]) -> bool:
    return works[index].settled(finished)


def _served(
    result: CopyResult, started: float, *, cached: bool, tier: Tier | None = None
) -> CopyResult:
    """A stored or shared result as this request's answer: its own id and timings; usage is
    zero because this request computed no tokens."""
    total_ms = round((time.perf_counter() - started) * 1000, 3)
    return CopyResult(
        id=new_copy_id(),
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
