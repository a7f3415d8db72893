"""Generation rounds on one generator: briefs in, checked and ranked results out, by the
request's deadline.

Round 1 samples about twice as many rows as variants wanted (copywriting/rounds.py decides
what each brief asks for). Later rounds regenerate only the slots still missing a variant
that passes every rule, while the deadline leaves time for another round (judged by the last
round's duration). With ``early_stop`` a brief's rows stop once enough distinct variants pass
every rule. Candidates rank by, among others, the likelihood the model gave each as it wrote
it; a relevance pass (COPYGEN_RELEVANCE) may add how much the brief raises it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from copygen.copywriting.rounds import BriefRounds
from copygen.deadline import Deadline
from copygen.domain import Completion, CopyBrief, CopyResult, Grounding
from copygen.errors import CopygenError, DeadlineExceeded
from copygen.generation import FinishedJob, Generator, RowEvent, Settle
from copygen.observability import tracing

log = logging.getLogger("copygen.rounds")

#: ``on_event(round, event)``: a draft token of some row in some round.
DraftHook = Callable[[int, RowEvent], None]


@dataclass(frozen=True, slots=True)
class RoundPolicy:
    """How rounds run (from the settings): at most ``max_rounds``, ``banned_always`` words on
    top of each brief's, the server's ``grounding`` for briefs that name none, ``early_stop``,
    the ``relevance`` pass, the ``relevance_floor`` that gates each round's candidates, and
    ``steering`` (copywriting/steering.py); while the generator's batch stays within
    ``selection_rows``, round 1 looks for ``selection_pool`` passing candidates per variant
    wanted and the likeliest are returned (1: no wider round)."""

    max_rounds: int
    banned_always: tuple[str, ...]
    grounding: Grounding
    early_stop: bool
    relevance: bool
    relevance_floor: float | None = None
    steering: bool = True
    selection_pool: float = 1.0
    selection_rows: int = 0


async def write_rounds(
    generator: Generator,
    briefs: Sequence[CopyBrief],
    policy: RoundPolicy,
    deadline: Deadline,
    on_event: DraftHook | None = None,
    started: float | None = None,
) -> list[CopyResult]:
    """Each brief's result, after as many rounds as its rules and the deadline allow. Round
    1 out of time is DeadlineExceeded; a later one ends the rounds with what was written.
    Timings count from ``started`` (``time.perf_counter()``; default: now)."""
    started = time.perf_counter() if started is None else started
    works = [
        BriefRounds.new(brief, policy.banned_always, policy.grounding, steering=policy.steering)
        for brief in briefs
    ]
    _widen(generator, works, policy)
    timings = {"queue": 0.0, "generation": 0.0}
    rounds, last_round_s, jobs = 0, 0.0, []
    while rounds < policy.max_rounds:
        pending = [w for w in works if w.needed() > 0]
        if not pending or (rounds and last_round_s > deadline.remaining()):
            break
        round_started = time.perf_counter()
        settle = functools.partial(_settled, pending) if policy.early_stop else None
        forward = None if on_event is None else functools.partial(on_event, rounds)
        try:
            finished = await _round(generator, pending, rounds, deadline, forward, settle)
        except DeadlineExceeded:
            if rounds == 0:
                raise
            break
        jobs.append(finished.job_id)
        if policy.relevance_floor is not None:
            await _gate(generator, pending, policy.relevance_floor, deadline)
        round_timings = finished.timings_ms
        timings["queue"] += round_timings["queue"]
        timings["generation"] += round_timings["generation"]
        if "first_token" in round_timings:  # measured from the request's start
            offset = (round_started - started) * 1000
            timings.setdefault("first_token", offset + round_timings["first_token"])
        rounds += 1
        last_round_s = time.perf_counter() - round_started
    if policy.relevance and not deadline.expired:
        scoring_started = time.perf_counter()
        await _relevance(generator, works, deadline)
        timings["relevance"] = (time.perf_counter() - scoring_started) * 1000
    timings["total"] = (time.perf_counter() - started) * 1000
    timings = {key: round(value, 2) for key, value in timings.items()}
    return [work.result(generator.model_id, rounds, timings, tuple(jobs)) for work in works]


def _widen(generator: Generator, works: Sequence[BriefRounds], policy: RoundPolicy) -> None:
    """Let round 1 of one-line channels' briefs look for more passing candidates than
    wanted, to return those the model found likeliest as it wrote them (ranking.merit;
    docs/quality.md, "Selection"), when the generator reports that likelihood and its batch
    has room for the extra rows: on a near-idle engine a decoding step is bound by reading
    the weights, so extra short rows cost little; under load they would cost throughput, and
    nothing widens. Long copy (posts, descriptions) is not widened: its rows cost the most
    and editors found none of it usable to choose."""
    wide = [work for work in works if work.channel.single_line]
    if policy.selection_pool <= 1 or not wide:
        return
    snapshot = generator.snapshot()
    if not snapshot.likelihoods or snapshot.figures.queued_jobs:
        return
    pools = [math.ceil(policy.selection_pool * work.brief.variants) for work in wide]
    rows = sum(BriefRounds.rows_for(pool) for pool in pools)
    if snapshot.figures.running_rows + rows > policy.selection_rows:
        return
    for work, pool in zip(wide, pools, strict=True):
        work.pool = pool


async def _round(
    generator: Generator,
    pending: Sequence[BriefRounds],
    index: int,
    deadline: Deadline,
    on_event: Callable[[RowEvent], None] | None,
    settle: Settle | None,
) -> FinishedJob:
    """Round ``index`` (from 0): the pending briefs' requests as one job, each brief absorbing
    what it wrote. Its span carries rows, tokens, times and what the checks found."""
    requests = [work.request(index) for work in pending]
    rows = sum(request.n for request in requests)
    with tracing.span("generation.round", round=index + 1, briefs=len(pending), rows=rows,
                      model=generator.model_id) as traced:  # fmt: skip
        started_ns = tracing.now_ns()
        finished = await generator.run(
            requests, deadline, on_event, settle=settle, follow_up=index > 0
        )
        before = [len(work.checked) for work in pending]
        for work, generation in zip(pending, finished.generations, strict=True):
            work.absorb(generation)
        if traced.recording:
            traced.set(**_round_figures(pending, before, finished))
            tracing.record_phases(started_ns, finished.timings_ms)
    return finished


def _round_figures(
    pending: Sequence[BriefRounds], before: Sequence[int], finished: FinishedJob
) -> dict[str, tracing.Value | None]:
    """A round's figures for its span: tokens, times, and the candidates it added to each
    brief with the failures and flags the checks found on them (``name:count``)."""
    new = [c for work, n in zip(pending, before, strict=True) for c in work.checked[n:]]
    failures = Counter(f for c in new for f in (*c.hard_failures, *c.soft_failures))
    flags = Counter(flag.type for c in new for flag in c.flags)
    timings = finished.timings_ms
    return {
        "job": finished.job_id,
        "rows_finished": sum(len(g.completions) for g in finished.generations),
        "prompt_tokens": sum(g.prompt_tokens for g in finished.generations),
        "completion_tokens": sum(
            c.completion_tokens for g in finished.generations for c in g.completions
        ),
        "queue_ms": timings.get("queue"),
        "first_token_ms": timings.get("first_token"),
        "generation_ms": timings.get("generation"),
        "checked": len(new),
        "passed": sum(1 for c in new if c.perfect),
        "failures": [f"{name}:{count}" for name, count in sorted(failures.items())],
        "flags": [f"{name}:{count}" for name, count in sorted(flags.items())],
    }


async def _gate(
    generator: Generator, works: Sequence[BriefRounds], floor: float, deadline: Deadline
) -> None:
    """Score the round's new passing candidates for relevance and let each brief fail those
    below ``floor`` (BriefRounds.judge). Skipped, like the final pass, on a failure or when
    the deadline comes first: the candidates then stand as the other checks left them."""
    texts = [work.unscored() for work in works]
    scores = await _scores(generator, works, texts, deadline)
    for work, found in zip(works, scores, strict=True):
        work.judge(found, floor)


async def _relevance(
    generator: Generator, works: Sequence[BriefRounds], deadline: Deadline
) -> None:
    """Each brief's shortlist scored for how much the brief raises the model's likelihood of
    the text (nats per token, into ``relevance_of``), in one pass (texts a gate already
    scored are not scored again). Ranking without it is still a ranking: on any failure, or
    when the deadline comes first, the briefs keep what the gates scored."""
    shortlists = [[t for t in work.shortlist() if t not in work.relevance_of] for work in works]
    found = await _scores(generator, works, shortlists, deadline)
    for work, more in zip(works, found, strict=True):
        work.relevance_of.update(more)


async def _scores(
    generator: Generator,
    works: Sequence[BriefRounds],
    shortlists: Sequence[Sequence[str]],
    deadline: Deadline,
) -> list[dict[str, float]]:
    """Per brief, text → relevance for its ``shortlists`` texts, in one scoring pass; none on
    any failure or when the deadline comes first."""
    requests = [r for work, texts in zip(works, shortlists, strict=True)
                for r in work.scoring(texts)]  # fmt: skip
    if not requests:
        return [{} for _ in works]
    try:
        async with asyncio.timeout(deadline.remaining()):
            with tracing.span("relevance.score", texts=len(requests)):
                scores = await generator.score(requests)
    except CopygenError as exc:
        log.warning("relevance scoring skipped: %s", exc.type)
        return [{} for _ in works]
    except TimeoutError:
        log.warning("relevance scoring skipped: the request deadline came first")
        return [{} for _ in works]
    result, position = [], 0
    for texts in shortlists:
        end = position + 2 * len(texts)
        result.append(BriefRounds.relevance(texts, scores[position:end]))
        position = end
    return result


def _settled(works: Sequence[BriefRounds], index: int, finished: Sequence[Completion]) -> bool:
    return works[index].settled(finished)
