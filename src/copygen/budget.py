"""COPYGEN_TOKEN_BUDGET: prompt + completion tokens per client and window, charged where tokens
are made (every generator the service hands out), so no route, stream or job can skip it.

A generation call reserves its worst case before it runs (each request's ``max_new_tokens`` x
rows, plus its prompt's characters / 4) and is then charged its real count. A call is
admitted while the client's count, reservations of calls still running included, is under the
budget, so simultaneous calls overshoot it by about one call at most (checking first and
charging after let any number through). A later round of an admitted request (``follow_up``)
is counted but never refused, so an admitted request finishes. A call the service refused or
failed costs nothing; one whose caller left or ran out of time keeps its reservation (the
work was done for it).

Whose budget: ``METER``, set for a request by api/middleware/rate_limit.py (its tenant, or
its client address when anonymous) and for a job's items by service/jobs.py (the job's
tenant). Without one (no budget configured, the CLI, tests) nothing is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from limits import RateLimitItem, parse

from copygen.deadline import Deadline
from copygen.domain import Generation, GenerationRequest, ScoreRequest
from copygen.errors import DeadlineExceeded, RateLimited
from copygen.generation import (
    FinishedJob,
    GenerationStream,
    Generator,
    GeneratorSnapshot,
    MetricsSink,
    RowEvent,
    Settle,
)
from copygen.ratelimit import Limiter
from copygen.resilience.admission import Admission

#: A prompt's characters per token, for reservations (English text runs about 4 to a token;
#: the real count replaces the guess when the call ends).
CHARS_PER_TOKEN = 4
#: Chat-template tokens a message adds around its text.
TOKENS_PER_MESSAGE = 8
#: How a call ends that keeps its reservation charged: its caller left or ran out of time.
KEPT = (asyncio.CancelledError, GeneratorExit, DeadlineExceeded)


def budget_identity(tenant: str) -> str:
    """The budget (and request limit) of a keyed tenant; anonymous callers are counted by
    address instead (api/middleware/rate_limit.py)."""
    return f"key:{tenant}"


def reservation_tokens(requests: Sequence[GenerationRequest]) -> int:
    """The most a call of ``requests`` may cost: every row's ``max_new_tokens``, plus each
    prompt's estimated tokens."""
    total = 0
    for request in requests:
        chars = len(request.prompt or "") + len(request.prefix)
        chars += sum(len(message.content) for message in request.messages)
        prompt = math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(request.messages)
        total += request.sampling.max_new_tokens * request.n + prompt
    return total


def tokens_used(generations: Sequence[Generation]) -> int:
    """Prompt + completion tokens a call's generations cost."""
    return sum(
        g.prompt_tokens + sum(c.completion_tokens for c in g.completions) for g in generations
    )


@dataclass(frozen=True, slots=True)
class Reservation:
    tokens: int
    #: When (``time.time()``) the window it was counted in ends.
    window_ends: float


class TokenMeter:
    """One client's token budget: reserve before a call, then charge its real count."""

    def __init__(self, limiter: Limiter, item: RateLimitItem, identity: str) -> None:
        self._limiter = limiter
        self._item = item
        self._identity = identity

    async def reserve(self, tokens: int, *, follow_up: bool = False) -> Reservation:
        """Count ``tokens`` now; RateLimited (and nothing counted) when the budget was spent
        already, unless this is a ``follow_up`` of an admitted request."""
        limiter, item, identity = self._limiter, self._item, self._identity
        count = await limiter.add(item, identity, tokens)
        if count - tokens >= item.amount and not follow_up:
            await limiter.add(item, identity, -tokens)
            _, reset_s = await limiter.stats(item, identity)
            raise RateLimited(
                "token budget spent; retry after the window resets",
                retry_after_s=max(1, math.ceil(reset_s)),
            )
        _, reset_s = await limiter.stats(item, identity)
        return Reservation(tokens, time.time() + reset_s)

    async def charge(self, reservation: Reservation, used: int) -> None:
        """Replace ``reservation`` by the ``used`` tokens. What is given back goes back only
        within the window it was counted in (after it, the new window would gain it)."""
        change = used - reservation.tokens
        if change < 0 and time.time() >= reservation.window_ends:
            change = 0
        if change:
            await self._limiter.add(self._item, self._identity, change)

    async def abandon(self, reservation: Reservation, error: BaseException) -> None:
        """The call ended with ``error`` before it made anything: a caller who left or ran
        out of time keeps the reservation charged (the work was done for it); a refusal or a
        failure of the service gives it back. Returns at once for the former (no await that
        a cancelled task would be cancelled at)."""
        if not isinstance(error, KEPT):
            await self.charge(reservation, 0)


class TokenBudget:
    """COPYGEN_TOKEN_BUDGET on a limiter: a meter per client."""

    def __init__(self, limiter: Limiter, budget: str) -> None:
        self.limiter = limiter
        self.item = parse(budget)

    def meter(self, identity: str) -> TokenMeter:
        return TokenMeter(self.limiter, self.item, identity)


#: The meter generation calls charge in this context (None: nothing is counted).
METER: ContextVar[TokenMeter | None] = ContextVar("copygen_token_meter", default=None)


@contextlib.contextmanager
def metering(meter: TokenMeter | None) -> Iterator[None]:
    """Generation calls made within (and in tasks started within) charge ``meter``."""
    token = METER.set(meter)
    try:
        yield
    finally:
        METER.reset(token)


class MeteredGenerator:
    """A generator whose ``run`` charges the current METER. ``open_stream`` cannot wait for a
    reservation (it must admit at once): callers that stream use ``open_metered_stream``."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner

    @property
    def metrics(self) -> MetricsSink:
        return self.inner.metrics

    @metrics.setter
    def metrics(self, sink: MetricsSink) -> None:
        self.inner.metrics = sink

    @property
    def gate(self) -> Admission:
        return self.inner.gate

    @gate.setter
    def gate(self, gate: Admission) -> None:
        self.inner.gate = gate

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def revision(self) -> str:
        return self.inner.revision

    @property
    def ready(self) -> bool:
        return self.inner.ready

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def run(
        self,
        requests: Sequence[GenerationRequest],
        deadline: Deadline,
        on_event: Callable[[RowEvent], None] | None = None,
        *,
        settle: Settle | None = None,
        follow_up: bool = False,
    ) -> FinishedJob:
        meter = METER.get()
        if meter is None:
            return await self.inner.run(
                requests, deadline, on_event, settle=settle, follow_up=follow_up
            )
        reservation = await meter.reserve(reservation_tokens(requests), follow_up=follow_up)
        try:
            finished = await self.inner.run(
                requests, deadline, on_event, settle=settle, follow_up=follow_up
            )
        except BaseException as exc:
            await meter.abandon(reservation, exc)
            raise
        await meter.charge(reservation, tokens_used(finished.generations))
        return finished

    def open_stream(
        self, requests: Sequence[GenerationRequest], deadline: Deadline
    ) -> GenerationStream:
        return self.inner.open_stream(requests, deadline)

    async def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        return await self.inner.score(requests)

    def snapshot(self) -> GeneratorSnapshot:
        return self.inner.snapshot()


async def open_metered_stream(
    generator: Generator, requests: Sequence[GenerationRequest], deadline: Deadline
) -> GenerationStream:
    """``generator.open_stream`` with the current METER's reservation made first (so a spent
    budget is refused before any byte is sent), charged when the stream ends."""
    meter = METER.get()
    if meter is None:
        return generator.open_stream(requests, deadline)
    reservation = await meter.reserve(reservation_tokens(requests))
    try:
        stream = generator.open_stream(requests, deadline)
    except BaseException as exc:
        await meter.abandon(reservation, exc)
        raise
    return _MeteredStream(stream, meter, reservation)


class _MeteredStream:
    """A stream whose call is charged when its events end."""

    def __init__(
        self, inner: GenerationStream, meter: TokenMeter, reservation: Reservation
    ) -> None:
        self._inner = inner
        self._meter = meter
        self._reservation = reservation

    async def events(self) -> AsyncGenerator[RowEvent, None]:
        try:
            async with contextlib.aclosing(self._inner.events()) as events:
                async for event in events:
                    yield event
        except BaseException as exc:
            await self._meter.abandon(self._reservation, exc)
            raise
        await self._meter.charge(self._reservation, tokens_used(self._inner.finished().generations))

    def finished(self) -> FinishedJob:
        return self._inner.finished()
