"""The generation seam: what the copywriter and the OpenAI routes need from whatever writes
tokens — the in-process engine (engine/) or a remote OpenAI-compatible server (backends/).

Both take requests, each sampled ``n`` times, and give back every row's completion, or its
token deltas as they arrive, within one deadline. Everything above the seam (copy checks,
rounds, ranking, caching, HTTP) is the same whichever generator is behind it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from copygen.deadline import Deadline
from copygen.domain import Completion, Generation, GenerationRequest, ScoreRequest
from copygen.resilience.admission import Admission
from copygen.resilience.breaker import CircuitBreaker
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
    #: Once finished, the mean log-probability of its tokens (GenerationRequest.logprobs).
    logprob: float | None = None


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


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """A generator's queue and batching counters, for /health, /metrics and the benchmark.
    Each figure is named once, here; a generator leaves at 0 what it does not have."""

    queued_jobs: int = 0
    running_rows: int = 0
    jobs_rejected: int = 0
    steps: int = 0
    forward_passes: int = 0
    draft_tokens: int = 0
    draft_tokens_accepted: int = 0
    prompt_tokens_reused: int = 0
    mean_batch_rows: float = 0.0
    max_batch_rows: int = 0
    jobs_submitted: int = 0
    jobs_completed: int = 0
    jobs_cancelled_queued: int = 0
    jobs_cancelled_running: int = 0
    jobs_failed: int = 0
    oom_splits: int = 0
    oom_failures: int = 0
    rows_settled: int = 0
    batch_ceiling: int = 0
    backend_in_flight: int = 0
    backend_calls: int = 0


@dataclass(frozen=True, slots=True)
class GeneratorSnapshot:
    """What a generator is doing now, typed: /health and /metrics read only this."""

    model_id: str
    ready: bool
    #: Its admission gate: the breaker, the memory guard and the drain state it admits by.
    gate: Admission
    figures: QueueFigures
    #: Its own /health sections: ``model``, and ``batching`` or ``backend``.
    sections: Mapping[str, Any]
    load_seconds: float | None = None
    degraded_to_cpu: bool = False
    #: Accelerator figures (bytes allocated, …), empty on a CPU or a remote server.
    device: Mapping[str, float] = field(default_factory=dict)
    #: Whether ``score`` works and completions carry their likelihood (``logprob``): the
    #: in-process model; a remote server does neither.
    likelihoods: bool = False

    @property
    def accepting(self) -> bool:
        """Ready for traffic: ready, not draining, the breaker not open."""
        return self.gate.accepting(self.ready)

    @property
    def breaker(self) -> CircuitBreaker:
        return self.gate.breaker

    @property
    def memory(self) -> MemoryGuard:
        return self.gate.memory


class Generator(Protocol):
    """The seam: what writes tokens, in process (engine/) or on a remote server (backends/).

    Lifecycle: ``start()`` once (load, probe; failure leaves it not ready with the reason in
    its snapshot), then any number of ``run``/``open_stream``/``score`` calls, then ``stop()``
    once. Every call is admitted by ``gate`` first (ready, draining, memory, breaker, queue
    bound) and bounded by the request's one ``Deadline``; neither ever starts a timeout of its
    own.
    """

    #: Where it reports steps, jobs and backend calls; set before ``start()`` (the runtime
    #: sets Prometheus).
    metrics: MetricsSink
    #: Its admission gate; the runtime shares the service's drain state into it.
    gate: Admission

    @property
    def model_id(self) -> str:
        """The model's name as callers see it (OpenAI ``model``, the response's ``model``)."""

    @property
    def revision(self) -> str:
        """Which weights (and where they run) the model id names: part of cache keys."""

    @property
    def ready(self) -> bool:
        """Loaded and warm (in process), or the server answers (remote)."""

    async def start(self) -> None:
        """Load the model or reach the server; called once by the runtime."""

    async def stop(self) -> None:
        """Fail what is still queued or running and release everything."""

    async def run(
        self,
        requests: Sequence[GenerationRequest],
        deadline: Deadline,
        on_event: Callable[[RowEvent], None] | None = None,
        *,
        settle: Settle | None = None,
        follow_up: bool = False,
    ) -> FinishedJob:
        """Generate ``requests`` as one job by ``deadline`` (DeadlineExceeded otherwise);
        ``on_event`` sees every row's token deltas as they are decoded; ``settle`` may stop a
        request's rows once it has what it needs; a ``follow_up`` (a later round of an
        admitted request) is not refused while draining."""

    def open_stream(
        self, requests: Sequence[GenerationRequest], deadline: Deadline
    ) -> GenerationStream:
        """Admit now (so a full queue or a cold model fail before any byte is sent) and
        return the job's stream of row events."""

    async def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Mean log-probability per token of each text after its messages (GenerationFailed
        where the generator cannot score)."""

    def snapshot(self) -> GeneratorSnapshot:
        """What it is doing now."""
