"""The batch sampler, on random logits (no model)."""

from __future__ import annotations

import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from copygen.domain import SamplingParams
from copygen.engine.model.sampler import RowSampler


def test_greedy_pick_with_repetition_penalty_matches_transformers() -> None:
    torch.manual_seed(3)
    vocab, penalties = 40, [1.0, 1.3, 2.0]
    logits = torch.randn(3, vocab) * 3
    history = torch.randint(0, vocab, (3, 12))
    seen = torch.zeros(3, vocab, dtype=torch.bool)
    seen.scatter_(1, history, True)
    sampler = RowSampler(
        [(SamplingParams(temperature=0.0, repetition_penalty=p), 0) for p in penalties],
        vocab,
        torch.device("cpu"),
    )
    chosen = sampler.sample(logits.clone(), seen).tolist()
    for row, penalty in enumerate(penalties):
        expected = RepetitionPenaltyLogitsProcessor(penalty)(
            history[row : row + 1], logits[row : row + 1].clone()
        )
        assert chosen[row] == int(expected.argmax())
    # the penalty changes the pick somewhere, or this test could not fail
    assert chosen != logits.argmax(dim=-1).tolist()


def test_keep_and_append_follow_the_rows_generators_included() -> None:
    vocab = 50
    logits = torch.randn(1, vocab)
    rows = [(SamplingParams(temperature=1.0, top_k=0, top_p=1.0), seed) for seed in (1, 2, 3)]
    alone = RowSampler([rows[2]], vocab, torch.device("cpu"))
    expected = [int(alone.sample(logits.clone(), torch.zeros(1, vocab, dtype=torch.bool))[0])]
    sampler = RowSampler(rows[:2], vocab, torch.device("cpu"))
    sampler.append(RowSampler([rows[2]], vocab, torch.device("cpu")))
    sampler.keep([2, 0])
    assert sampler.temperature.shape == (2,)
    picked = sampler.sample(logits.repeat(2, 1), torch.zeros(2, vocab, dtype=torch.bool))
    assert [int(picked[0])] == expected  # row 2 moved to place 0 with its own generator
