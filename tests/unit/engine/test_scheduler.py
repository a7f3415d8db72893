"""The scheduler on a fake runner: queue bound, deadlines, cancellation, shared steps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
from copygen.engine.batch_policy import BatchPolicy
from copygen.engine.scheduler import Scheduler
from copygen.errors import DeadlineExceeded, QueueFull
from tests.fakes import FakeRunner


def request(n: int = 1, words: int = 3) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage("user", "x"),),
        sampling=SamplingParams(max_new_tokens=words + 5),
        n=n,
    )


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


def make(
    runner: FakeRunner, executor: ThreadPoolExecutor, *, max_queue: int = 8, max_batch: int = 8
) -> Scheduler:
    policy = BatchPolicy(max_batch_size=max_batch, max_wait_s=0.0)
    scheduler = Scheduler(runner, policy, executor, max_queue=max_queue)
    scheduler.start()
    return scheduler


async def test_jobs_complete_with_every_row(executor: ThreadPoolExecutor) -> None:
    runner = FakeRunner(lambda r, row: f"one two three {row}", whole=False)
    scheduler = make(runner, executor)
    job = scheduler.submit([request(n=2), request(n=1)], timeout_s=5)
    generations = await job.future
    assert [len(g.completions) for g in generations] == [2, 1]
    assert generations[0].completions[1].text == "one two three 1"
    assert scheduler.running_rows == 0
    await scheduler.stop()


async def test_concurrent_jobs_share_steps_under_the_ceiling(executor: ThreadPoolExecutor) -> None:
    runner = FakeRunner(lambda r, row: "a b c d e f", whole=False)
    scheduler = make(runner, executor, max_batch=4, max_queue=16)
    jobs = [scheduler.submit([request(n=1)], timeout_s=5) for _ in range(10)]
    await asyncio.gather(*(job.future for job in jobs))
    assert max(runner.batch_sizes) == 4
    assert len(runner.batch_sizes) < 10 * 6  # far fewer steps than one job at a time
    await scheduler.stop()


async def test_late_arrivals_join_the_running_batch(executor: ThreadPoolExecutor) -> None:
    runner = FakeRunner(lambda r, row: " ".join(["w"] * 20), whole=False, step_delay_s=0.005)
    scheduler = make(runner, executor)
    first = scheduler.submit([request(n=1, words=20)], timeout_s=5)
    while not runner.batch_sizes:
        await asyncio.sleep(0.001)
    second = scheduler.submit([request(n=1, words=20)], timeout_s=5)
    await asyncio.gather(first.future, second.future)
    assert len(runner.joins) == 2  # the second joined while the first was running
    assert 2 in runner.batch_sizes
    await scheduler.stop()


async def test_a_full_queue_rejects_at_once(executor: ThreadPoolExecutor) -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    scheduler = make(runner, executor, max_queue=2, max_batch=1)
    jobs = [scheduler.submit([request()], timeout_s=5)]
    while not runner.joins:  # the first job is running (and hangs)
        await asyncio.sleep(0.001)
    jobs += [scheduler.submit([request()], timeout_s=5) for _ in range(2)]
    with pytest.raises(QueueFull):
        scheduler.submit([request()], timeout_s=5)
    assert scheduler.stats.jobs_rejected == 1
    hang.set()
    await asyncio.gather(*(job.future for job in jobs))
    await scheduler.stop()


async def test_cancelled_while_queued_never_reaches_the_runner(
    executor: ThreadPoolExecutor,
) -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    scheduler = make(runner, executor, max_batch=1)
    running = scheduler.submit([request()], timeout_s=5)
    queued = scheduler.submit([request()], timeout_s=5)
    await asyncio.sleep(0.05)
    scheduler.cancel(queued)
    hang.set()
    await running.future
    assert queued.future.cancelled()
    assert all(spec.key[0] != queued.id for join in runner.joins for spec in join)
    assert scheduler.stats.jobs_cancelled_queued == 1
    await scheduler.stop()


async def test_cancelled_while_running_rows_are_dropped(executor: ThreadPoolExecutor) -> None:
    runner = FakeRunner(lambda r, row: " ".join(["w"] * 50), whole=False)
    scheduler = make(runner, executor)
    job = scheduler.submit([request(n=2, words=50)], timeout_s=5)
    while sum(runner.batch_sizes) < 4:
        await asyncio.sleep(0.001)
    scheduler.cancel(job)
    other = scheduler.submit([request()], timeout_s=5)
    await other.future
    assert sorted(runner.dropped) == [(job.id, 0, 0), (job.id, 0, 1)]
    assert scheduler.running_rows == 0
    assert scheduler.stats.jobs_cancelled_running == 1
    await scheduler.stop()


async def test_deadline_covers_queue_time(executor: ThreadPoolExecutor) -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    scheduler = make(runner, executor, max_batch=1)
    blocker = scheduler.submit([request()], timeout_s=5)
    late = scheduler.submit([request()], timeout_s=0.05)
    await asyncio.sleep(0.1)
    hang.set()
    await blocker.future
    with pytest.raises(DeadlineExceeded):
        await late.future
    assert all(spec.key[0] != late.id for join in runner.joins for spec in join)
    await scheduler.stop()


async def test_a_failing_runner_fails_its_jobs_and_recovers(executor: ThreadPoolExecutor) -> None:
    calls = {"n": 0}

    def reply(r: GenerationRequest, row: int) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return "fine"

    runner = FakeRunner(reply)
    scheduler = make(runner, executor)
    failing = scheduler.submit([request()], timeout_s=5)
    with pytest.raises(Exception, match="generation failed"):
        await failing.future
    ok = scheduler.submit([request()], timeout_s=5)
    assert (await ok.future)[0].completions[0].text == "fine"
    await scheduler.stop()
