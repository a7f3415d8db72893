"""This request's deadline: one absolute time on ``time.monotonic()``, made once where the
request enters (from COPYGEN_REQUEST_TIMEOUT_S, tightened by the caller's own timeout where it
gave one) and handed down unchanged: the wait for another replica's answer, the rounds, the
scheduler, the token stream and the backend calls all ask it how much is left. No layer below
the entry point ever starts a fresh timeout; no time left is an answer (DeadlineExceeded).

>>> deadline = Deadline.within(3.0)
>>> 0 < deadline.remaining() <= 3.0
True
>>> Deadline.within(0.0).expired
True
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from copygen.errors import DeadlineExceeded

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Deadline:
    """``at``: the monotonic time the request must be answered by; ``budget_s``: the time it
    was given when it entered (for messages)."""

    at: float
    budget_s: float
    clock: Clock = time.monotonic

    @classmethod
    def within(cls, seconds: float, *, clock: Clock = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(clock() + seconds, seconds, clock)

    def tightened(self, seconds: float | None) -> Deadline:
        """This deadline, or one ``seconds`` from now when that is sooner (a caller's own
        timeout). ``None`` leaves it as it is."""
        if seconds is None:
            return self
        sooner = self.clock() + seconds
        return self if sooner >= self.at else Deadline(sooner, seconds, self.clock)

    def remaining(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at

    def left_or_raise(self, doing: str) -> float:
        """Seconds left for ``doing``; DeadlineExceeded when none are."""
        left = self.remaining()
        if left <= 0.0:
            raise self.exceeded(doing)
        return left

    def exceeded(self, doing: str) -> DeadlineExceeded:
        """The error for ``doing`` not finishing in time."""
        return DeadlineExceeded(f"{doing} did not finish within {self.budget_s:g} s")
