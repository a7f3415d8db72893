"""Single-flight in one process: identical concurrent misses share one generation."""

from __future__ import annotations

import asyncio

from copygen.domain import CopyResult


class LeaderGone(Exception):
    """The request generating a shared result went away before finishing; generate anew."""


class SingleFlight:
    """Identical concurrent misses in this process share one generation: the first caller leads,
    later ones wait for the leader's result (or its error)."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[CopyResult]] = {}
        self.shared_total = 0

    def follow(self, key: str) -> asyncio.Future[CopyResult] | None:
        future = self._flights.get(key)
        if future is not None:
            self.shared_total += 1
        return future

    def lead(self, key: str) -> None:
        self._flights[key] = asyncio.get_running_loop().create_future()

    def finish(self, key: str, result: CopyResult | None, error: BaseException | None) -> None:
        future = self._flights.pop(key, None)
        if future is None or future.done():
            return
        if error is None and result is not None:
            future.set_result(result)
            return
        if error is None or isinstance(error, asyncio.CancelledError):
            error = LeaderGone()
        future.set_exception(error)
        future.exception()  # mark retrieved: nobody may be waiting, and asyncio would log it

    def __len__(self) -> int:
        return len(self._flights)
