"""A submitted job as its caller sees it: its whole result, or its token deltas as they are
decoded, both bounded by the request deadline. Leaving early (a client that went away, a
cancelled task) drops the job: queued rows never start, running rows leave the batch at the
next step."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from copygen.deadline import Deadline
from copygen.domain import Generation
from copygen.engine.scheduler import DecodeJob, Scheduler
from copygen.generation import FinishedJob, RowEvent, job_timings_ms


class TokenStream:
    """One submitted job. Use ``result()`` (the job was submitted without events) or
    ``events()`` (with events), once."""

    def __init__(self, scheduler: Scheduler, job: DecodeJob, deadline: Deadline) -> None:
        self._scheduler = scheduler
        self.job = job
        self._deadline = deadline

    async def result(self) -> list[Generation]:
        """Every row's completion, once the last row finished."""
        try:
            async with self._bounded():
                return await asyncio.shield(self.job.future)
        finally:
            if not self.job.done:
                self._scheduler.cancel(self.job)

    async def events(self) -> AsyncGenerator[RowEvent, None]:
        """Every row's events in decoding order; the job's error if it fails."""
        job = self.job
        assert job.events is not None, "submitted without events"
        rows_left = job.rows
        try:
            while rows_left:
                async with self._bounded():
                    event = await job.events.get()
                if event.finish_reason == "cancelled":
                    job.future.result()  # raises the job's error
                    return
                if event.finish_reason is not None:  # finished, or dropped by a settle
                    rows_left -= 1
                yield event
        finally:
            if not job.done:
                self._scheduler.cancel(job)

    def finished(self) -> FinishedJob:
        job = self.job
        timings = job_timings_ms(
            job.submitted_at, job.admitted_at, job.first_token_at, job.finished_at
        )
        return FinishedJob(job.id, job.generations(), timings)

    @contextlib.asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        """Where the request's deadline becomes DeadlineExceeded (and drops the job). The
        deadline is read as time left, so the loop's own clock need not be the same one."""
        try:
            async with asyncio.timeout(self._deadline.remaining()):
                yield
        except TimeoutError as exc:
            self._scheduler.cancel(self.job, self._deadline.exceeded("generation"))
            raise self._deadline.exceeded("generation") from exc
