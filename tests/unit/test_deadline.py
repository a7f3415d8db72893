"""The request's one deadline: made once, read as time left, never renewed."""

from __future__ import annotations

import pytest

from copygen.deadline import Deadline
from copygen.errors import DeadlineExceeded
from tests.fakes import FakeClock


def test_time_left_runs_down_and_never_below_zero() -> None:
    clock = FakeClock()
    deadline = Deadline.within(3.0, clock=clock)
    clock.advance(1.0)
    assert deadline.remaining() == pytest.approx(2.0)
    clock.advance(5.0)
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_a_callers_timeout_only_ever_tightens_it() -> None:
    clock = FakeClock()
    deadline = Deadline.within(120.0, clock=clock)
    assert deadline.tightened(3.0).remaining() == pytest.approx(3.0)
    assert deadline.tightened(500.0) is deadline
    assert deadline.tightened(None) is deadline


def test_no_time_left_is_an_answer_not_a_fresh_timeout() -> None:
    clock = FakeClock()
    deadline = Deadline.within(0.5, clock=clock)
    assert deadline.left_or_raise("waiting") == pytest.approx(0.5)
    clock.advance(0.5)
    with pytest.raises(DeadlineExceeded, match="within 0.5 s"):
        deadline.left_or_raise("waiting")
