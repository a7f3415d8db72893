"""The sampling profiler: every thread's stacks as speedscope "sampled" profiles, the weights
adding up to the time sampled; one profile at a time."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from copygen.observability.profiling import SCHEMA, Busy, Profiler, Samples, sample


def busy_loop_for_the_profiler(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def _check_speedscope(profile: dict[str, Any]) -> None:
    """What speedscope's schema asks of a file of sampled profiles."""
    assert profile["$schema"] == SCHEMA
    frames = profile["shared"]["frames"]
    assert all(set(frame) == {"name", "file", "line"} for frame in frames)
    for one in profile["profiles"]:
        assert one["type"] == "sampled"
        assert one["unit"] == "milliseconds"
        assert len(one["samples"]) == len(one["weights"])
        assert all(0 <= index < len(frames) for stack in one["samples"] for index in stack)
        assert one["endValue"] == pytest.approx(sum(one["weights"]), abs=0.01)


def test_a_thread_running_a_function_shows_it_on_top_of_its_stacks() -> None:
    stop_work, stop_sampling = threading.Event(), threading.Event()
    worker = threading.Thread(
        target=busy_loop_for_the_profiler, args=(stop_work,), name="worker-under-test"
    )
    samples = Samples()
    sampler = threading.Thread(
        target=sample, args=(samples, stop_sampling, 0.002), name="sampler-under-test"
    )
    worker.start()
    sampler.start()
    time.sleep(0.3)
    stop_sampling.set()
    sampler.join()
    stop_work.set()
    worker.join()

    profile = samples.speedscope("test")
    _check_speedscope(profile)
    by_name = {one["name"]: one for one in profile["profiles"]}
    assert profile["profiles"][0]["name"] == "MainThread"  # the event loop's, first
    worker_profile = by_name["worker-under-test"]
    names = [frame["name"] for frame in profile["shared"]["frames"]]
    seen = {names[i] for stack in worker_profile["samples"] for i in stack}
    assert "busy_loop_for_the_profiler" in seen
    assert worker_profile["endValue"] == pytest.approx(samples.seconds * 1000, rel=0.05)
    assert "sampler-under-test" not in by_name  # it never samples itself


async def test_one_profile_at_a_time() -> None:
    profiler = Profiler(interval_s=0.002)
    first = asyncio.create_task(profiler.record(0.3))
    while not profiler.running:
        await asyncio.sleep(0.01)
    with pytest.raises(Busy) as refused:
        await profiler.record(0.1)
    assert refused.value.retry_after_s == 1
    profile = await first
    _check_speedscope(profile)
    assert not profiler.running
    _check_speedscope(await profiler.record(0.05))  # the next one may start


async def test_a_cancelled_profile_stops_sampling() -> None:
    profiler = Profiler(interval_s=0.002)
    task = asyncio.create_task(profiler.record(30))
    while not profiler.running:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not profiler.running
    assert "copygen-profiler" not in {thread.name for thread in threading.enumerate()}
