"""A remote job: the rows one submission asked for, streamed by concurrent calls to the model
server and merged into one sequence of row events under the request's one deadline. Leaving
early cancels every call (closing its connection, so the server stops generating)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from copygen.deadline import Deadline
from copygen.domain import Completion, Generation, GenerationRequest
from copygen.generation import FinishedJob, RowEvent, RowKey, job_generations, job_timings_ms


@dataclass(eq=False)
class RemoteJob:
    """One submission to the model server: several requests, each ``n`` rows, by one
    ``deadline`` (the request's); times on the event loop's clock."""

    id: int
    requests: Sequence[GenerationRequest]
    deadline: Deadline
    submitted: float
    admitted: float | None = None
    first_token: float | None = None
    finished: float | None = None
    completions: dict[RowKey, Completion] = field(default_factory=dict)
    prompt_tokens: dict[int, int] = field(default_factory=dict)

    def generations(self) -> list[Generation]:
        return job_generations(self.id, self.requests, self.completions, self.prompt_tokens)

    def record(self, index: int, rows: list[Row], usage: dict[str, Any]) -> list[RowEvent]:
        """Keep one call's finished rows (token counts adding up to its usage where it gave
        one); their finishing events."""
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        self.prompt_tokens[index] = prompt_tokens
        total = int(usage.get("completion_tokens") or 0)
        counted = sum(row.tokens for row in rows)
        if rows and total and counted != total:
            # Chunks are counted per row, but a chunk can carry two tokens' text (or none, for
            # a stop token): the server's total is exact, so the difference goes to the last
            # row, and the job's usage equals what the server generated.
            rows[-1].tokens = max(0, rows[-1].tokens + total - counted)
        events = []
        for row in rows:
            finish = row.finish or "stop"
            self.completions[row.key] = Completion(row.text, row.tokens, finish)
            events.append(RowEvent(row.key, "", finish, row.text, prompt_tokens, row.tokens))
        return events

    def timings_ms(self) -> dict[str, float]:
        return job_timings_ms(self.submitted, self.admitted, self.first_token, self.finished)


@dataclass
class Row:
    """One choice of a call as it streams in."""

    key: RowKey
    text: str = ""
    tokens: int = 0
    finish: Literal["stop", "length"] | None = None
    first_token: float | None = None


class RefusedN(Exception):
    """The server refused ``n`` > 1 (a 4xx before any token)."""


class CallOwner(Protocol):
    """Who makes a job's calls (the remote backend) and hears how the job ended."""

    def calls(
        self, job: RemoteJob, emit: Callable[[RowEvent], None]
    ) -> list[Coroutine[Any, Any, None]]: ...

    def job_done(self, job: RemoteJob) -> None: ...

    def deadline_missed(self, job: RemoteJob) -> None: ...


class RemoteStream:
    """One admitted job: its row events as the calls stream them, then what it made."""

    def __init__(self, owner: CallOwner, job: RemoteJob) -> None:
        self._owner = owner
        self.job = job

    async def events(self) -> AsyncGenerator[RowEvent, None]:
        job, owner = self.job, self._owner
        queue: asyncio.Queue[RowEvent | BaseException | None] = asyncio.Queue()
        calls = [asyncio.create_task(call) for call in owner.calls(job, queue.put_nowait)]
        running = len(calls)
        for task in calls:
            task.add_done_callback(lambda t: queue.put_nowait(_outcome(t)))
        try:
            while running:
                try:
                    async with asyncio.timeout(job.deadline.remaining()):
                        item = await queue.get()
                except TimeoutError as exc:
                    owner.deadline_missed(job)
                    raise job.deadline.exceeded("generation") from exc
                if item is None:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
            job.finished = asyncio.get_running_loop().time()
            owner.job_done(job)
        finally:
            for task in calls:
                task.cancel()
            # Each call closes its connection as it unwinds (so the server stops generating);
            # shielded, because a caller cancelled again (anyio re-delivers cancellation at
            # every await) would otherwise cancel the calls again in the middle of closing.
            await asyncio.shield(asyncio.gather(*calls, return_exceptions=True))

    def finished(self) -> FinishedJob:
        return FinishedJob(self.job.id, self.job.generations(), self.job.timings_ms())


def _outcome(task: asyncio.Task[None]) -> BaseException | None:
    if task.cancelled():
        return None
    return task.exception()
