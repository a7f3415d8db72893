"""The copy workflow: one brief (or many) in, checked and ranked copy out.

It looks in the result cache (L1, then Redis), shares identical generations (single-flight in
this process, a short Redis lock across replicas), runs the generation rounds on the
generator each brief's channel goes to (service/rounds.py), and caches what it wrote — all
by the request's one deadline. It owns none of these parts: the runtime (service/runtime.py)
builds, starts and stops them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from copygen.auth import ANONYMOUS
from copygen.cache.keys import KeyContext, copy_cache_key
from copygen.cache.singleflight import LeaderGone
from copygen.cache.tiered import Tier, TieredCache
from copygen.config import Settings
from copygen.copywriting.safety import brand_safety_words
from copygen.deadline import Deadline
from copygen.domain import CachePolicy, CopyBrief, CopyResult, Usage, new_copy_id
from copygen.observability import tracing
from copygen.service.brands import BrandBook
from copygen.service.generators import Generators
from copygen.service.rounds import DraftHook, RoundPolicy, write_rounds


class CopyWorkflow:
    """cache → shared generation → rounds → checks."""

    def __init__(
        self,
        settings: Settings,
        cache: TieredCache,
        generators: Generators,
        book: BrandBook | None = None,
    ) -> None:
        self.cache = cache
        self.generators = generators
        #: Brands and feedback (None: a workflow without a database, in tests).
        self.book = book
        banned = brand_safety_words(settings.brand_safety_words)
        self.rounds = RoundPolicy(
            settings.max_rounds,
            banned,
            settings.grounding,
            settings.early_stop,
            settings.relevance,
            settings.relevance_floor,
            settings.steering,
            settings.selection_pool,
            settings.selection_rows,
        )
        self._policy = (
            f"rounds={settings.max_rounds};banned={','.join(sorted(banned))}"
            f";grounding={settings.grounding};relevance={settings.relevance}"
            f";relevance_floor={settings.relevance_floor}"
            f";early_stop={settings.early_stop};steering={settings.steering}"
            f";selection={settings.selection_pool}"
        )
        #: For callers with no request of their own (the CLI, tests): a deadline this long.
        self._timeout_s = settings.request_timeout_s

    async def generate(
        self,
        brief: CopyBrief,
        deadline: Deadline | None = None,
        on_event: DraftHook | None = None,
        *,
        tenant: str = ANONYMOUS,
    ) -> CopyResult:
        """Write ``brief.variants`` variants, each checked against the brief's channel, by
        ``deadline``. ``on_event(round, event)`` sees every draft token as it is decoded."""
        [result] = await self.generate_many([brief], deadline, on_event, tenant=tenant)
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
        generator = self.generators.for_channel(channel)
        return KeyContext(tenant, generator.model_id, generator.revision, self._policy)

    async def generate_many(
        self,
        briefs: Sequence[CopyBrief],
        deadline: Deadline | None = None,
        on_event: DraftHook | None = None,
        *,
        tenant: str = ANONYMOUS,
    ) -> list[CopyResult]:
        """Copy for several briefs by one ``deadline``: cache hits first, then one shared
        generation for the rest.

        Each brief's ``cache`` policy applies: ``use`` reads and writes the cache and shares a
        generation with identical briefs already in flight (here, or on another replica through
        a Redis lock); ``refresh`` skips the read; ``bypass`` neither reads nor writes.
        Streaming callers (``on_event``) never join another request's generation.
        """
        started = time.perf_counter()
        deadline = deadline or Deadline.within(self._timeout_s)
        keys = [copy_cache_key(brief, self.key_context(tenant, brief.channel)) for brief in briefs]
        results: list[CopyResult | None] = [None] * len(briefs)
        for i, (brief, key) in enumerate(zip(briefs, keys, strict=True)):
            if brief.cache is CachePolicy.USE and (hit := await self._look_up(key, brief)):
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
                writing = await self._claim_across_replicas(
                    writing, leading, keys, results, locks, deadline
                )
            if writing:
                written = await self._write(
                    [briefs[i] for i in writing], deadline, on_event, started
                )
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
                with tracing.span("singleflight.wait", channel=briefs[i].channel):
                    shared = await asyncio.shield(future)
                results[i] = _served(shared, started, cached=False)
            except LeaderGone:
                [results[i]] = await self.generate_many([briefs[i]], deadline, tenant=tenant)
        answered = [result for result in results if result is not None]
        if self.book is not None:
            asked = [brief for brief, result in zip(briefs, results, strict=True) if result]
            self.book.remember(tenant, asked, answered)
        return answered

    async def _look_up(self, key: str, brief: CopyBrief) -> tuple[CopyResult, Tier] | None:
        with tracing.span("cache.lookup", channel=brief.channel) as traced:
            hit = await self.cache.get(key)
            traced.set(hit=hit is not None, tier=hit[1] if hit else None)
        return hit

    async def _claim_across_replicas(
        self,
        writing: list[int],
        leading: set[int],
        keys: Sequence[str],
        results: list[CopyResult | None],
        locks: dict[int, str],
        deadline: Deadline,
    ) -> list[int]:
        """Take the Redis generation lock for each leading key. Keys another replica is already
        generating are awaited in L2 (for what is left of the deadline) instead; the indices
        still to write are returned."""
        claims = await asyncio.gather(*(self.cache.lock(keys[i]) for i in leading))
        busy = []
        for i, claim in zip(leading, claims, strict=True):
            if isinstance(claim, str):
                locks[i] = claim
            elif claim is None:
                busy.append(i)
        peers = await self._wait_for_peers([keys[i] for i in busy], deadline) if busy else []
        for i, result in zip(busy, peers, strict=True):
            if result is not None:
                results[i] = _served(result, time.perf_counter(), cached=True, tier="l2")
                self.cache.flights.finish(keys[i], result, None)
        return [i for i in writing if results[i] is None]

    async def _wait_for_peers(
        self, keys: Sequence[str], deadline: Deadline
    ) -> list[CopyResult | None]:
        with tracing.span("cache.peer_wait", keys=len(keys)) as traced:
            peers = await asyncio.gather(*(self.cache.wait_for_peer(k, deadline) for k in keys))
            traced.set(found=sum(1 for peer in peers if peer is not None))
        return peers

    async def _write(
        self,
        briefs: Sequence[CopyBrief],
        deadline: Deadline,
        on_event: DraftHook | None,
        started: float,
    ) -> list[CopyResult]:
        """Each generator's briefs in their own rounds, the generators concurrently."""
        groups: dict[int, list[int]] = {}
        for i, brief in enumerate(briefs):
            groups.setdefault(id(self.generators.for_channel(brief.channel)), []).append(i)
        written = await asyncio.gather(
            *(
                write_rounds(
                    self.generators.for_channel(briefs[group[0]].channel),
                    [briefs[i] for i in group],
                    self.rounds,
                    deadline,
                    on_event,
                    started,
                )
                for group in groups.values()
            )
        )
        results: dict[int, CopyResult] = {}
        for group, group_results in zip(groups.values(), written, strict=True):
            results.update(zip(group, group_results, strict=True))
        return [results[i] for i in range(len(briefs))]


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
