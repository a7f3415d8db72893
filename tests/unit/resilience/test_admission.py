"""The one admission gate every generator uses: the reasons, their order, the drain."""

from __future__ import annotations

import pytest

from copygen.errors import CircuitOpen, Draining, MemoryPressure, NotReady, QueueFull
from copygen.resilience.admission import Admission, Drain
from copygen.resilience.breaker import CircuitBreaker
from copygen.resilience.memory import MemoryGuard
from tests.fakes import FakeClock


def gate(max_queue: int = 2, clock: FakeClock | None = None) -> Admission:
    breaker = CircuitBreaker("model", failure_threshold=1, reset_s=10, clock=clock or FakeClock())
    memory = MemoryGuard(
        rss_high_bytes=None, device_high_ratio=1.0, read_device=dict, relieve=lambda: None
    )
    return Admission("model", "still loading", breaker, memory, max_queue)


def test_a_cold_generator_refuses_with_its_own_message() -> None:
    with pytest.raises(NotReady, match="still loading"):
        gate().admit(ready=False, queued=0)


def test_a_full_queue_refuses_and_is_counted() -> None:
    admission = gate(max_queue=2)
    admission.admit(ready=True, queued=1)
    with pytest.raises(QueueFull):
        admission.admit(ready=True, queued=2)
    assert admission.rejected_total == 1


def test_draining_refuses_new_work_but_lets_a_follow_up_round_finish() -> None:
    admission = gate()
    admission.drain.begin()
    with pytest.raises(Draining):
        admission.admit(ready=True, queued=0)
    admission.admit(ready=True, queued=0, follow_up=True)
    assert not admission.accepting(ready=True)


def test_an_open_breaker_refuses_with_a_retry_time() -> None:
    clock = FakeClock()
    admission = gate(clock=clock)
    admission.breaker.failure()
    with pytest.raises(CircuitOpen) as refused:
        admission.admit(ready=True, queued=0)
    assert refused.value.retry_after_s == 10
    assert not admission.accepting(ready=True)


def test_high_memory_refuses_before_the_breaker_is_asked() -> None:
    admission = gate()
    admission.memory.shedding = True
    with pytest.raises(MemoryPressure):
        admission.admit(ready=True, queued=0)


def test_one_drain_reaches_every_gate_that_shares_it() -> None:
    drain, first, second = Drain(), gate(), gate()
    first.drain = second.drain = drain
    drain.begin()
    assert not first.accepting(ready=True)
    assert not second.accepting(ready=True)
