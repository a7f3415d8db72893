"""A small circuit breaker: closed → open after repeated failures → half-open with one probe.

Written here rather than taken from a library: pybreaker has no asyncio support and
circuitbreaker lets every caller through while half-open. This one admits exactly one probe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

log = logging.getLogger("copygen.breaker")

#: ``listener(name, old, new)``: a breaker moved from ``old`` to ``new``.
Listener = Callable[[str, "BreakerState", "BreakerState"], None]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


#: Numeric value of each state for a Prometheus gauge.
STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """Counts consecutive failures of a dependency and stops calling it while it is down.

    Use ``allow()`` before a call and ``success()`` / ``failure()`` after it. While open,
    ``allow()`` is False until ``reset_s`` has passed; then exactly one caller (the probe) is
    let through. Its success closes the breaker, its failure opens it for another ``reset_s``.
    A probe that never reports back (its caller was cancelled) is given up after ``reset_s``.
    Every transition is logged here, once, and handed to each ``listen``-er (metrics, the
    engine's device fallback).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Listener | None = None,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._listeners: list[Listener] = [] if on_change is None else [on_change]
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self.opened_total = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    def listen(self, listener: Listener) -> None:
        """Hand every later transition to ``listener`` too."""
        self._listeners.append(listener)

    def retry_after_s(self) -> float:
        """Seconds until the next probe may run (0 when closed)."""
        if self._state is BreakerState.CLOSED:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - self._clock())

    def allow(self) -> bool:
        now = self._clock()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if now - self._opened_at < self.reset_s:
                return False
            self._set(BreakerState.HALF_OPEN)
            self._probe_started = now
            return True
        # Half-open: the probe is out; a lost probe is replaced after reset_s.
        if self._probe_started is not None and now - self._probe_started >= self.reset_s:
            self._probe_started = now
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._probe_started = None
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probe_started = None
        if self._state is not BreakerState.OPEN:
            self.opened_total += 1
            self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        old, self._state = self._state, state
        log.warning("breaker %s: %s -> %s", self.name, old.value, state.value)
        for listener in self._listeners:
            listener(self.name, old, state)
