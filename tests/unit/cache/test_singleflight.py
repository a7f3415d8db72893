"""Single-flight in one process: who leads, who follows, and what followers get when the
leader succeeds, fails or goes away."""

from __future__ import annotations

import asyncio
import gc

import pytest

from copygen.cache.singleflight import LeaderGone, SingleFlight
from copygen.domain import CopyResult

RESULT = CopyResult(id="cp_1", model="fake/model", channel="sms", variants=[], requested=1)


async def test_the_first_caller_leads_and_followers_get_its_result() -> None:
    flights = SingleFlight()
    assert flights.follow("k") is None  # nobody in flight: this caller leads
    flights.lead("k")
    first, second = flights.follow("k"), flights.follow("k")
    assert first is second is not None
    assert (flights.shared_total, len(flights)) == (2, 1)
    flights.finish("k", RESULT, None)
    assert await first is RESULT
    assert len(flights) == 0
    assert flights.follow("k") is None  # finished flights are not joined any more


async def test_followers_get_the_leaders_error() -> None:
    flights = SingleFlight()
    flights.lead("k")
    follower = flights.follow("k")
    assert follower is not None
    flights.finish("k", None, ValueError("model broke"))
    with pytest.raises(ValueError, match="model broke"):
        await follower


@pytest.mark.parametrize("error", [asyncio.CancelledError(), None])
async def test_a_leader_that_went_away_tells_followers_to_generate_anew(
    error: BaseException | None,
) -> None:
    flights = SingleFlight()
    flights.lead("k")
    follower = flights.follow("k")
    assert follower is not None
    flights.finish("k", None, error)
    with pytest.raises(LeaderGone):
        await follower


async def test_a_failure_nobody_followed_is_not_logged_as_never_retrieved() -> None:
    reported: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
    flights = SingleFlight()
    flights.lead("k")
    flights.finish("k", None, RuntimeError("x"))
    gc.collect()  # the future is gone: asyncio reports unretrieved exceptions now
    assert reported == []
    flights.finish("k", RESULT, None)  # finishing a key twice changes nothing
    assert len(flights) == 0
