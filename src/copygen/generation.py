"""The generation seam: what the copywriter and the OpenAI routes need from whatever writes
tokens — the in-process engine (engine/) or a remote OpenAI-compatible server (backends/).

Both take requests, each sampled ``n`` times, and give back every row's completion, or its
token deltas as they arrive, within one deadline. Everything above the seam (copy checks,
rounds, ranking, caching, HTTP) is the same whichever generator is behind it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from copygen.domain import Completion, Generation, GenerationRequest, ScoreRequest
from copygen.resilience.breaker import BreakerState, CircuitBreaker
from copygen.resilience.memory import MemoryGuard

#: (job id, request index within the job, row index within the request)
RowKey = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class RowEvent:
    """What one decoding step did to one row. ``text`` is the whole completion once finished.
    ``dropped``: the row was stopped because its request had what it needed (``Settle``)."""

    key: RowKey
    delta: str
    finish_reason: Literal["stop", "length", "cancelled", "dropped"] | None
    text: str
    prompt_tokens: int
    completion_tokens: int


#: ``settle(index, completions)``: request ``index`` has these rows finished (in row order);
#: True when it needs no more, so its other rows stop and its generation holds only these.
#: A generator may ignore it and run every row (a remote backend's ``n`` is one call).
Settle = Callable[[int, Sequence[Completion]], bool]


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """What one finished job made, with its queue/generation/first-token times in ms."""

    job_id: int
    generations: list[Generation]
    timings_ms: dict[str, float]


def job_generations(
    job_id: int,
    requests: Sequence[GenerationRequest],
    completions: Mapping[RowKey, Completion],
    prompt_tokens: Mapping[int, int],
) -> list[Generation]:
    """A finished job's generations, one per request, its rows in order (rows a ``Settle``
    dropped are absent)."""
    return [
        Generation(
            prompt_tokens=prompt_tokens.get(index, 0),
            completions=tuple(
                completions[key]
                for row in range(request.n)
                if (key := (job_id, index, row)) in completions
            ),
        )
        for index, request in enumerate(requests)
    ]


def job_timings_ms(
    submitted: float, admitted: float | None, first_token: float | None, finished: float | None
) -> dict[str, float]:
    """Queue, generation and (when a token came) first-token times of a job, in ms."""
    admitted = admitted or submitted
    finished = finished or admitted
    timings = {"queue": (admitted - submitted) * 1000, "generation": (finished - admitted) * 1000}
    if first_token is not None:
        timings["first_token"] = (first_token - submitted) * 1000
    return timings


class MetricsSink(Protocol):
    """Where generators report what they observe; observability/metrics.py implements it with
    Prometheus. No generator imports a metrics library."""

    def step(self, rows: int, seconds: float) -> None:
        """One decoding step over ``rows`` rows took ``seconds`` (one token per row, or
        several for a row whose speculative guesses the model confirmed)."""

    def job_done(
        self,
        queue_s: float,
        first_token_s: float | None,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """A job finished: its queue wait, time to first token and token counts."""

    def breaker_changed(self, name: str, state: str) -> None:
        """A circuit breaker moved to ``state``."""

    def backend_call(self, outcome: str, seconds: float, first_token_s: float | None) -> None:
        """One call to a remote backend ended (``outcome``: ok, error, timeout, cancelled)."""

    def backend_error(self, reason: str) -> None:
        """A remote backend call failed for ``reason`` (connect, timeout, status_5xx, …)."""


class NullMetrics:
    def breaker_changed(self, name: str, state: str) -> None:
        pass

    def step(self, rows: int, seconds: float) -> None:
        pass

    def job_done(
        self,
        queue_s: float,
        first_token_s: float | None,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        pass

    def backend_call(self, outcome: str, seconds: float, first_token_s: float | None) -> None:
        pass

    def backend_error(self, reason: str) -> None:
        pass


class GenerationStream(Protocol):
    """One submitted job's token deltas (``events()``, once), then what it made."""

    def events(self) -> AsyncGenerator[RowEvent, None]: ...

    def finished(self) -> FinishedJob: ...


async def relay(
    stream: GenerationStream, on_event: Callable[[RowEvent], None] | None
) -> FinishedJob:
    """Read a stream to its end, handing each row event to ``on_event``; what the job made.
    Leaving early (an error, a cancelled caller) closes the stream, which drops the job."""
    async with contextlib.aclosing(stream.events()) as events:
        async for event in events:
            if on_event is not None:
                on_event(event)
    return stream.finished()


class Generator(Protocol):
    """The seam. ``run`` is the one way to generate; ``open_stream`` admits first (so a full
    queue or a cold model fail before any byte is sent) and streams later."""

    #: True once shutdown began: readiness fails and new work is refused.
    draining: bool
    #: Set before start() to receive observations (the app sets Prometheus).
    metrics: MetricsSink
    breaker: CircuitBreaker
    memory: MemoryGuard
    degraded_to_cpu: bool
    startup_error: str | None

    @property
    def model_id(self) -> str: ...

    @property
    def revision(self) -> str:
        """Which weights the model id names (part of cache keys)."""

    @property
    def ready(self) -> bool: ...

    @property
    def accepting(self) -> bool:
        """Ready for traffic: warm, not draining, the breaker not open."""

    @property
    def load_seconds(self) -> float | None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def run(
        self,
        requests: Sequence[GenerationRequest],
        timeout_s: float | None = None,
        on_event: Callable[[RowEvent], None] | None = None,
        *,
        follow_up: bool = False,
        settle: Settle | None = None,
    ) -> FinishedJob: ...

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]: ...

    def open_stream(
        self, requests: Sequence[GenerationRequest], timeout_s: float | None = None
    ) -> GenerationStream: ...

    async def score(self, requests: Sequence[ScoreRequest]) -> list[float]: ...

    def stats(self) -> dict[str, float | int]:
        """Queue and batching figures for /health, /metrics and the benchmark."""

    def describe(self) -> dict[str, Any]:
        """The generator's sections of /health (model, batching or backend, …)."""

    def device_stats(self) -> dict[str, float]: ...

    def breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None: ...
