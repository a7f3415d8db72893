"""Batch forming as a pure function of (queue, running batch, clock readings, policy).

The scheduler asks ``BatchPolicy.decide`` before every decoding step how many queued rows
should join the running batch now. The policy (also in docs/batching.md):

* **Ceiling.** Never more than ``max_batch_size`` rows in the running batch (the adaptive
  ``ceiling`` can sit lower, e.g. after an out-of-memory split).
* **Continuous, with grouped joins.** While rows are running, queued rows join between two
  steps; finished rows leave at once (runner side). Every join costs one prefill forward pass
  during which the running rows make no progress, so joins are grouped: queued rows join when
  there are at least ``running / JOIN_GROUP_DIVISOR`` of them (rounded, at least 1) or when the
  oldest has waited ``JOIN_WAIT_STEPS`` measured step times, never longer than
  ``max_batch_wait_ms``. At 16 clients this halves the prefill passes per request.
* **Idle start.** With nothing running, a lone request starts at once *unless* traffic says a
  companion is about to arrive: when the measured mean gap between arrivals is shorter than
  the wait window, the batcher waits up to that window so the first step is fuller. The window
  is ``min(max_batch_wait_ms, one measured decoding step)``: waiting longer than a step is never
  worth it when late arrivals can join the next step anyway.
* **Static mode** (``continuous=False``, kept for measurement): a batch runs to completion
  before the next one forms, like padded ``generate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EWMA_ALPHA = 0.2
#: Successful steps after an out-of-memory split before the ceiling grows again (by half).
RECOVER_STEPS = 200
JOIN_GROUP_DIVISOR = 4
JOIN_WAIT_STEPS = 2.0


@dataclass(slots=True)
class LoadStats:
    """Exponentially weighted means of the gap between arrivals and of one decoding step."""

    arrival_gap_s: float | None = None
    step_s: float | None = None
    last_arrival: float | None = None

    def observe_arrival(self, now: float) -> None:
        if self.last_arrival is not None:
            gap = max(0.0, now - self.last_arrival)
            self.arrival_gap_s = _ewma(self.arrival_gap_s, gap)
        self.last_arrival = now

    def observe_step(self, seconds: float) -> None:
        self.step_s = _ewma(self.step_s, seconds)


def _ewma(mean: float | None, sample: float) -> float:
    return sample if mean is None else (1 - EWMA_ALPHA) * mean + EWMA_ALPHA * sample


@dataclass(frozen=True, slots=True)
class Decision:
    """``admit`` rows join now; when none do and nothing runs, re-check after ``wait_s``."""

    admit: int
    wait_s: float | None = None


@dataclass(slots=True)
class BatchPolicy:
    max_batch_size: int
    max_wait_s: float
    continuous: bool = True
    stats: LoadStats = field(default_factory=LoadStats)
    ceiling: int = 0
    good_steps: int = 0

    def __post_init__(self) -> None:
        self.ceiling = self.ceiling or self.max_batch_size

    def lower_ceiling(self, rows: int) -> None:
        """After an out-of-memory step: at most ``rows`` rows run together from now on."""
        self.ceiling = max(1, min(self.ceiling, rows))
        self.good_steps = 0

    def step_succeeded(self) -> None:
        """Grow a lowered ceiling back by half every RECOVER_STEPS good steps."""
        if self.ceiling >= self.max_batch_size:
            return
        self.good_steps += 1
        if self.good_steps >= RECOVER_STEPS:
            self.ceiling = min(self.max_batch_size, self.ceiling + max(1, self.ceiling // 2))
            self.good_steps = 0

    def window_s(self) -> float:
        """How long an idle batcher may hold a request for company."""
        gap = self.stats.arrival_gap_s
        if gap is None:
            return 0.0
        window = min(self.max_wait_s, self.stats.step_s or self.max_wait_s)
        return window if gap < window else 0.0

    def join_wait_s(self) -> float:
        """How long a queued row may wait for companions before joining a running batch."""
        step = self.stats.step_s
        if step is None:
            return 0.0
        return min(self.max_wait_s, JOIN_WAIT_STEPS * step)

    def decide(self, queued_rows: int, oldest_wait_s: float, running_rows: int) -> Decision:
        room = max(0, min(self.ceiling, self.max_batch_size) - running_rows)
        if queued_rows == 0 or room == 0:
            return Decision(0)
        if running_rows:
            if not self.continuous:
                return Decision(0)
            group = max(1, round(running_rows / JOIN_GROUP_DIVISOR))
            if queued_rows >= min(group, room) or oldest_wait_s >= self.join_wait_s():
                return Decision(min(queued_rows, room))
            return Decision(0)
        if queued_rows >= room:
            return Decision(room)
        window = self.window_s()
        if oldest_wait_s >= window:
            return Decision(queued_rows)
        return Decision(0, wait_s=window - oldest_wait_s)
