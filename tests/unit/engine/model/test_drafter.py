"""The n-gram drafter on plain token lists (no torch, no model)."""

from __future__ import annotations

from copygen.domain import SamplingParams
from copygen.engine.model.drafter import NgramDrafter, RowGuesses, speculates


def _row(tokens: list[int]) -> RowGuesses:
    row = RowGuesses()
    row.extend(tokens)
    return row


def test_guesses_follow_the_rows_own_pairs() -> None:
    drafter = NgramDrafter(4, shared=False)
    assert drafter.propose(_row([5, 6, 7, 5, 6]), budget=10) == [7, 5, 6, 7]
    assert drafter.drafted_total == 4


def test_the_budget_and_max_tokens_bound_the_guesses() -> None:
    drafter = NgramDrafter(3, shared=False)
    row = _row([5, 6, 7, 5, 6])
    assert drafter.propose(row, budget=2) == [7, 5]
    assert drafter.propose(row, budget=9) == [7, 5, 6]


def test_no_pair_seen_means_no_guess() -> None:
    drafter = NgramDrafter(4, shared=False)
    assert drafter.propose(_row([1, 2, 3]), budget=4) == []
    assert drafter.propose(_row([1]), budget=4) == []


def test_verify_keeps_the_agreed_guesses_plus_the_models_token() -> None:
    drafter = NgramDrafter(4, shared=False)
    row = _row([5, 6, 7, 5, 6])
    row.drafts = drafter.propose(row, budget=4)
    row.targets = [7, 5, 9, 1, 2]  # the model agrees with two guesses, then says 9
    assert drafter.verify(row) == ([7, 5, 9], 2)
    assert row.limit == 4  # two more than were confirmed
    assert (row.drafts, row.targets) == ([], [])
    assert drafter.accepted_total == 2


def test_a_missed_first_guess_still_yields_the_models_token() -> None:
    row = _row([1, 2, 3])
    row.drafts, row.targets = [8, 8], [4, 0, 0]
    assert row.verify() == ([4], 0)
    assert row.limit == 2


def test_the_shared_table_guesses_from_finished_rows_only_when_on() -> None:
    private, shared = NgramDrafter(2, shared=False), NgramDrafter(2, shared=True)
    for drafter in (private, shared):
        drafter.learn([1, 2, 3, 4])
    assert private.propose(_row([9, 1, 2]), budget=2) == []
    assert shared.propose(_row([9, 1, 2]), budget=2) == [3, 4]


def test_the_shared_table_is_bounded_oldest_out() -> None:
    drafter = NgramDrafter(1, shared=True, table_size=2)
    drafter.learn([1, 2, 3, 4, 5])  # pairs (1,2) (2,3) (3,4): the oldest goes
    assert list(drafter.recent) == [(2, 3), (3, 4)]


def test_greedy_rows_without_a_penalty_speculate_and_sampled_rows_when_asked() -> None:
    assert speculates(SamplingParams(temperature=0.0, repetition_penalty=1.0))
    assert not speculates(SamplingParams(temperature=0.7, repetition_penalty=1.0))
    assert speculates(SamplingParams(temperature=0.7), sampled_rows=True)
    assert speculates(SamplingParams(temperature=0.7, repetition_penalty=1.2), sampled_rows=True)
    # A greedy row's guesses are checked against the raw greedy token: no penalty then.
    assert not speculates(SamplingParams(temperature=0.0, repetition_penalty=1.2))
