"""One admission gate for every generator: work is refused before anything is queued, and for
the same reasons in the same order whichever generator would run it — not ready, shutting
down, memory high, its circuit breaker open, its queue at its bound.

The drain state is the running service's (``Drain``, owned by the runtime): one flag that every
generator's gate reads, set once when shutdown begins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from copygen.errors import CircuitOpen, Draining, MemoryPressure, NotReady, QueueFull
from copygen.resilience.breaker import BreakerState, CircuitBreaker
from copygen.resilience.memory import MemoryGuard


class Drain:
    """Whether the service is shutting down: readiness fails and new work is refused, while
    work already admitted (a later round of a request in flight) may finish."""

    def __init__(self) -> None:
        self.active = False

    def begin(self) -> None:
        self.active = True


@dataclass(eq=False)
class Admission:
    """What a generator checks before it queues a job. ``what`` names the thing behind it in
    messages ("model", "model server"); ``not_ready`` is what a caller is told while it
    loads."""

    what: str
    not_ready: str
    breaker: CircuitBreaker
    memory: MemoryGuard
    max_queue: int
    drain: Drain = field(default_factory=Drain)
    #: Jobs refused because the queue was at its bound.
    rejected_total: int = 0

    def admit(self, *, ready: bool, queued: int, follow_up: bool = False) -> None:
        """Raise the reason this job may not be queued now, or return. A ``follow_up`` job
        belongs to a request already admitted, which draining lets finish."""
        if not ready:
            raise NotReady(self.not_ready)
        if self.drain.active and not follow_up:
            raise Draining("the service is shutting down; retry on another replica")
        if self.memory.shedding:
            raise MemoryPressure("memory is high; retry shortly")
        if not self.breaker.allow():
            retry = max(1, math.ceil(self.breaker.retry_after_s()))
            raise CircuitOpen(
                f"generation is paused after repeated {self.what} failures", retry_after_s=retry
            )
        if queued >= self.max_queue:
            self.rejected_total += 1
            raise QueueFull("the generation queue is full; retry shortly")

    def accepting(self, ready: bool) -> bool:
        """Ready for traffic: ``ready``, not draining, the breaker not open."""
        return ready and not self.drain.active and self.breaker.state is not BreakerState.OPEN
