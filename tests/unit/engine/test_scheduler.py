"""The scheduler on a fake runner: deadlines, cancellation, shared steps."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from copygen.deadline import Deadline
from copygen.domain import ChatMessage, Completion, GenerationRequest, SamplingParams
from copygen.engine.batch_policy import BatchPolicy
from copygen.engine.scheduler import Scheduler
from copygen.engine.stream import TokenStream
from copygen.errors import DeadlineExceeded
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


def make(runner: FakeRunner, executor: ThreadPoolExecutor, *, max_batch: int = 8) -> Scheduler:
    policy = BatchPolicy(max_batch_size=max_batch, max_wait_s=0.0)
    scheduler = Scheduler(runner, policy, executor)
    scheduler.start()
    return scheduler


async def test_jobs_complete_with_every_row(executor: ThreadPoolExecutor) -> None:
    runner = FakeRunner(lambda r, row: f"one two three {row}", whole=False)
    scheduler = make(runner, executor)
    job = scheduler.submit([request(n=2), request(n=1)], Deadline.within(5))
    generations = await job.future
    assert [len(g.completions) for g in generations] == [2, 1]
    assert generations[0].completions[1].text == "one two three 1"
    assert scheduler.running_rows == 0
    await scheduler.stop()


async def test_concurrent_jobs_share_steps_under_the_ceiling(executor: ThreadPoolExecutor) -> None:
    runner = FakeRunner(lambda r, row: "a b c d e f", whole=False)
    scheduler = make(runner, executor, max_batch=4)
    jobs = [scheduler.submit([request(n=1)], Deadline.within(5)) for _ in range(10)]
    await asyncio.gather(*(job.future for job in jobs))
    assert max(runner.batch_sizes) == 4
    assert len(runner.batch_sizes) < 10 * 6  # far fewer steps than one job at a time
    await scheduler.stop()


async def test_late_arrivals_join_the_running_batch(executor: ThreadPoolExecutor) -> None:
    runner = FakeRunner(lambda r, row: " ".join(["w"] * 20), whole=False, step_delay_s=0.005)
    scheduler = make(runner, executor)
    first = scheduler.submit([request(n=1, words=20)], Deadline.within(5))
    while not runner.batch_sizes:
        await asyncio.sleep(0.001)
    second = scheduler.submit([request(n=1, words=20)], Deadline.within(5))
    await asyncio.gather(first.future, second.future)
    assert len(runner.joins) == 2  # the second joined while the first was running
    assert 2 in runner.batch_sizes
    await scheduler.stop()


async def test_cancelled_while_queued_never_reaches_the_runner(
    executor: ThreadPoolExecutor,
) -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    scheduler = make(runner, executor, max_batch=1)
    running = scheduler.submit([request()], Deadline.within(5))
    queued = scheduler.submit([request()], Deadline.within(5))
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
    job = scheduler.submit([request(n=2, words=50)], Deadline.within(5))
    while sum(runner.batch_sizes) < 4:
        await asyncio.sleep(0.001)
    scheduler.cancel(job)
    other = scheduler.submit([request()], Deadline.within(5))
    await other.future
    assert sorted(runner.dropped) == [(job.id, 0, 0), (job.id, 0, 1)]
    assert scheduler.running_rows == 0
    assert scheduler.stats.jobs_cancelled_running == 1
    await scheduler.stop()


async def test_deadline_covers_queue_time(executor: ThreadPoolExecutor) -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    scheduler = make(runner, executor, max_batch=1)
    blocker = scheduler.submit([request()], Deadline.within(5))
    while not runner.joins:  # the blocker is running (and hangs)
        await asyncio.sleep(0.001)
    late = scheduler.submit([request()], Deadline.within(0.05))
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
    failing = scheduler.submit([request()], Deadline.within(5))
    with pytest.raises(Exception, match="generation failed"):
        await failing.future
    ok = scheduler.submit([request()], Deadline.within(5))
    assert (await ok.future)[0].completions[0].text == "fine"
    await scheduler.stop()


def lengths(*words: int) -> FakeRunner:
    """Row ``i`` of every request decodes ``words[i]`` words, one per step."""
    return FakeRunner(lambda r, row: " ".join(["w"] * words[row]), whole=False)


async def test_a_settled_request_drops_its_other_rows(executor: ThreadPoolExecutor) -> None:
    runner = lengths(2, 3, 40, 40)
    scheduler = make(runner, executor)
    asked: list[tuple[int, int]] = []

    def settle(index: int, finished: Sequence[Completion]) -> bool:
        asked.append((index, len(finished)))
        return index == 0 and len(finished) >= 2

    job = scheduler.submit(
        [request(n=4, words=40), request(n=1, words=3)], Deadline.within(5), settle=settle
    )
    first, second = await job.future
    assert [len(c.text.split()) for c in first.completions] == [2, 3]
    assert [c.text for c in second.completions] == ["w w"]  # the other request is untouched
    assert (0, 1) in asked
    assert (0, 2) in asked
    while len(runner.dropped) < 2:  # the dropped rows leave at the next step
        await asyncio.sleep(0.001)
    assert sorted(runner.dropped) == [(job.id, 0, 2), (job.id, 0, 3)]
    assert sum(runner.batch_sizes) < 2 + 3 + 40  # the 40-word rows never ran to the end
    assert scheduler.running_rows == 0
    assert scheduler.stats.rows_settled == 2
    assert scheduler.stats.jobs_completed == 1
    await scheduler.stop()


async def test_a_settled_requests_queued_rows_never_start(executor: ThreadPoolExecutor) -> None:
    runner = lengths(2, 2, 2, 2)
    scheduler = make(runner, executor, max_batch=2)
    job = scheduler.submit(
        [request(n=4)], Deadline.within(5), settle=lambda index, finished: len(finished) >= 2
    )
    [generation] = await job.future
    assert len(generation.completions) == 2
    assert {spec.key[2] for join in runner.joins for spec in join} == {0, 1}
    assert scheduler.queued_jobs == 0
    assert scheduler.running_rows == 0
    await scheduler.stop()


async def test_rows_finishing_in_the_same_step_all_count(executor: ThreadPoolExecutor) -> None:
    """Settling is judged after the whole step, so the result does not depend on the order
    of rows within a step."""
    runner = lengths(3, 3, 3, 9)
    scheduler = make(runner, executor)
    job = scheduler.submit(
        [request(n=4, words=9)], Deadline.within(5), settle=lambda i, done: len(done) >= 1
    )
    [generation] = await job.future
    assert len(generation.completions) == 3
    await scheduler.stop()


async def test_a_stream_ends_with_dropped_rows(executor: ThreadPoolExecutor) -> None:
    runner = lengths(1, 30)
    scheduler = make(runner, executor)
    job = scheduler.submit(
        [request(n=2, words=30)], Deadline.within(5), stream=True, settle=lambda i, d: True
    )
    stream = TokenStream(scheduler, job, Deadline.within(5))
    reasons = [e.finish_reason async for e in stream.events() if e.finish_reason is not None]
    assert reasons == ["stop", "dropped"]
    assert len(stream.finished().generations[0].completions) == 1
    await scheduler.stop()


async def test_a_failing_settle_lets_the_rows_run_and_the_loop_go_on(
    executor: ThreadPoolExecutor,
) -> None:
    runner = lengths(1, 3, 5)
    scheduler = make(runner, executor)

    def broken(index: int, finished: Sequence[Completion]) -> bool:
        raise RuntimeError("a bug in the caller's check")

    job = scheduler.submit([request(n=3, words=5)], Deadline.within(5), settle=broken)
    [generation] = await job.future
    assert len(generation.completions) == 3  # not settled: every row ran to its end
    other = scheduler.submit([request()], Deadline.within(5))
    await other.future
    assert scheduler.stats.rows_settled == 0
    await scheduler.stop()


async def test_a_requests_later_round_goes_before_requests_that_arrived_after_it(
    executor: ThreadPoolExecutor,
) -> None:
    hang = threading.Event()
    runner = FakeRunner(hang=hang)
    scheduler = make(runner, executor, max_batch=1)
    first_round = Deadline.within(30)
    blocker = scheduler.submit([request()], Deadline.within(60))
    while not runner.joins:  # the blocker is running (and hangs)
        await asyncio.sleep(0.001)
    newcomer = scheduler.submit([request()], Deadline.within(30))
    later_round = scheduler.submit([request()], first_round)  # the earlier request's round 2
    hang.set()
    await asyncio.gather(blocker.future, newcomer.future, later_round.future)
    order = [spec.key[0] for join in runner.joins for spec in join]
    assert order.index(later_round.id) < order.index(newcomer.id)
    await scheduler.stop()
