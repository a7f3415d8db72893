"""The batch sampler, on random logits (no model)."""

from __future__ import annotations

import pytest
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


def test_keep_and_append_follow_the_rows_seeds_and_draw_counts_included() -> None:
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
    assert [int(picked[0])] == expected  # row 2 moved to place 0 with its own seed


#: One step's logits over a vocabulary of 8, for the distribution tests.
LOGITS = torch.tensor([2.0, 1.6, 1.2, 0.8, 0.3, -0.5, -1.0, -3.0])


def _observed(params: SamplingParams, rows: int = 20_000) -> torch.Tensor:
    """How often each token is drawn in one step over ``rows`` seeded rows (seeds 0..rows-1)
    with these logits and token 1 already seen."""
    vocab = len(LOGITS)
    seen = torch.zeros(rows, vocab, dtype=torch.bool)
    seen[:, 1] = True
    sampler = RowSampler([(params, seed) for seed in range(rows)], vocab, torch.device("cpu"))
    drawn = sampler.sample(LOGITS.repeat(rows, 1), seen)
    return torch.bincount(drawn, minlength=vocab).double() / rows


def test_sampling_draws_each_rows_processed_distribution() -> None:
    """One step over 20,000 seeded rows at once: the tokens drawn match the distribution
    after penalty, temperature, top-k and top-p (total variation below what 20,000 draws
    can tell apart), and a token top-p removed is never drawn."""
    vocab = len(LOGITS)
    params = SamplingParams(temperature=0.8, top_p=0.9, top_k=6, repetition_penalty=1.3)
    observed = _observed(params)
    reference = RowSampler([(params, 0)], vocab, torch.device("cpu"))
    penalised = LOGITS[None].clone()
    seen = torch.zeros(1, vocab, dtype=torch.bool)
    seen[:, 1] = True
    reference._penalise(penalised, seen, slice(None))  # noqa: SLF001
    probs, index = reference._top(penalised, slice(None))  # noqa: SLF001
    expected = torch.zeros(vocab).index_add_(0, index[0], probs[0] / probs[0].sum())
    assert float((observed - expected).abs().sum()) / 2 < 0.02
    assert bool((observed[expected == 0] == 0).all())


def test_whole_vocabulary_rows_draw_the_softmax_distribution() -> None:
    """Top-k 0 and top-p 1 (OpenAI's defaults) draw from every token by the inverse of the
    cumulative distribution, not a sort: the same distribution (20,000 seeded rows in one
    step, penalty and temperature applied), every token reachable."""
    params = SamplingParams(temperature=0.8, top_p=1.0, top_k=0, repetition_penalty=1.3)
    observed = _observed(params)
    penalised = LOGITS.clone()
    penalised[1] /= 1.3
    expected = (penalised / 0.8).softmax(dim=-1).double()
    assert float((observed - expected).abs().sum()) / 2 < 0.02
    assert bool((observed > 0).all())


@pytest.mark.parametrize("top_p", [0.95, 1.0])
def test_a_seeded_row_draws_the_same_tokens_whatever_shares_its_batch(top_p: float) -> None:
    vocab, steps = 30, 12
    logits = torch.randn(steps, vocab)
    params = SamplingParams(temperature=1.0, top_p=top_p, top_k=0, repetition_penalty=1.0)
    others = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=0.7, top_k=5),
        SamplingParams(temperature=1.0, top_p=1.0, top_k=0),
    ]
    none = torch.zeros(1, vocab, dtype=torch.bool)

    def tokens(mates: int, place: int) -> list[int]:
        seeds = [100 + i for i in range(mates)]
        seeds.insert(place, 7)
        rows = [(others[i % len(others)], s) for i, s in enumerate(seeds)]
        rows[place] = (params, 7)
        sampler = RowSampler(rows, vocab, torch.device("cpu"))
        seen = none.repeat(len(seeds), 1)
        return [int(sampler.sample(logits[t].repeat(len(seeds), 1), seen)[place])
                for t in range(steps)]  # fmt: skip

    alone = tokens(0, 0)
    assert tokens(5, 3) == alone
    assert tokens(9, 9) == alone
    assert len(set(alone)) > 3  # it does sample


def _two_steps_directly(sampler: RowSampler, logits: torch.Tensor, seen: torch.Tensor) -> tuple:
    """Two tokens drawn one per step, as without speculation (the reference distribution)."""
    first = int(sampler.sample(logits[0:1].clone(), seen[None].clone())[0])
    seen = seen.clone()
    seen[first] = True
    second = int(sampler.sample(logits[1:2].clone(), seen[None].clone())[0])
    return first, second


def test_speculative_sampling_draws_exactly_the_models_distribution() -> None:
    """With a guess that is often right and often wrong, the first two tokens of a step
    (the kept guess and the next, or the replacement) are distributed as drawing them one by
    one: total variation below what 20,000 draws can tell apart, penalty and top-p included."""
    torch.manual_seed(0)
    vocab, trials = 6, 20_000
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -1.0], [0.5, 2.0, 0.0, 1.0, 1.5, -0.5]])
    seen = torch.zeros(vocab, dtype=torch.bool)
    seen[3] = True
    params = SamplingParams(temperature=0.8, top_p=0.95, top_k=0, repetition_penalty=1.3)
    draft = [1]  # the model's second choice at the first position
    speculative: dict[tuple[int, ...], int] = {}
    direct: dict[tuple[int, ...], int] = {}
    for seed in range(trials):
        sampler = RowSampler([(params, seed)], vocab, torch.device("cpu"))
        tokens = sampler.speculate(0, logits, seen, draft)
        if len(tokens) == 1:  # the guess was rejected: the replacement ends the step
            reference_first = tokens[0]
            key: tuple[int, ...] = (reference_first,)
        else:
            key = tuple(tokens)
        speculative[key] = speculative.get(key, 0) + 1
        reference = RowSampler([(params, seed + trials)], vocab, torch.device("cpu"))
        first, second = _two_steps_directly(reference, logits, seen)
        key = (first, second) if first == draft[0] else (first,)
        direct[key] = direct.get(key, 0) + 1
    keys = set(speculative) | set(direct)
    distance = sum(abs(speculative.get(k, 0) - direct.get(k, 0)) for k in keys) / (2 * trials)
    assert distance < 0.02, (speculative, direct)
    # The guess is kept about as often as the model draws it.
    kept = sum(n for k, n in speculative.items() if len(k) == 2) / trials
    assert 0.1 < kept < 0.6


def test_a_seed_fixes_what_speculative_sampling_yields() -> None:
    logits = torch.randn(4, 50)
    seen = torch.zeros(50, dtype=torch.bool)
    params = SamplingParams(temperature=0.7, top_p=0.9, top_k=20, repetition_penalty=1.1)
    drafts = [int(logits[0].argmax()), int(logits[1].argmax()), int(logits[2].argmax())]

    def draw(seed: int) -> list[int]:
        sampler = RowSampler([(params, seed)], 50, torch.device("cpu"))
        return sampler.speculate(0, logits, seen, drafts)

    assert draw(7) == draw(7)
    assert len({tuple(draw(seed)) for seed in range(30)}) > 1


def test_a_guess_top_p_leaves_alone_is_always_kept() -> None:
    """Top-p keeps only the top token (p = 0.93 > top_p): drawn one by one it is certain, so
    guessing it is always right, and a wrong guess is always replaced by it."""
    logits = torch.tensor([[5.0, 2.0, 1.0, 0.0], [0.0, 6.0, 0.0, 0.0]])
    seen = torch.zeros(4, dtype=torch.bool)
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=0, repetition_penalty=1.0)
    for seed in range(200):
        sampler = RowSampler([(params, seed)], 4, torch.device("cpu"))
        assert sampler.speculate(0, logits, seen, [0]) == [0, 1]
        sampler = RowSampler([(params, seed)], 4, torch.device("cpu"))
        assert sampler.speculate(0, logits, seen, [2]) == [0]


@pytest.mark.parametrize("peaked", [True, False])
def test_a_nucleus_found_among_the_best_tokens_is_the_one_a_full_sort_gives(
    peaked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Top-k 0 with top-p below 1 first looks among the NUCLEUS_PROBE best tokens: the same
    distribution as sorting the whole vocabulary when the nucleus is there (the best 256 hold
    95% of the mass here, so normalising over them alone would cut the nucleus short), and
    the full sort when it is not (a flat distribution); a row with a small top-k in the same
    batch keeps its own normalisation."""
    torch.manual_seed(4)
    vocab = 2_000
    if peaked:
        best = torch.linspace(0.0, -3.0, 256).exp()
        probs_in = torch.cat([0.95 * best / best.sum(), torch.full((vocab - 256,), 0.05 / 1744)])
        logits = probs_in.log()[torch.randperm(vocab)].repeat(3, 1)
    else:
        logits = torch.randn(3, vocab) * 0.5
    params = [
        SamplingParams(temperature=1.0, top_k=0, top_p=0.9),
        SamplingParams(temperature=1.0, top_k=0, top_p=0.5),
        SamplingParams(temperature=0.9, top_k=20, top_p=0.95),
    ]
    sampler = RowSampler([(p, 0) for p in params], vocab, torch.device("cpu"))
    probed = []
    probe = RowSampler._probe

    def spy(self: RowSampler, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        probed.append(probe(self, *args))
        return probed[-1]

    monkeypatch.setattr(RowSampler, "_probe", spy)
    probs, index = sampler._top(logits, slice(None))  # noqa: SLF001
    monkeypatch.setattr(RowSampler, "NUCLEUS_PROBE", vocab)  # the full sort
    full_probs, full_index = sampler._top(logits, slice(None))  # noqa: SLF001
    assert (probed[0] is not None) is peaked
    for row in range(3):
        got = torch.zeros(vocab).index_add_(0, index[row], probs[row])
        expected = torch.zeros(vocab).index_add_(0, full_index[row], full_probs[row])
        torch.testing.assert_close(got / got.sum(), expected / expected.sum())


def test_a_rows_avoided_tokens_are_never_drawn_and_follow_the_row() -> None:
    vocab = 30
    logits = torch.zeros(3, vocab)
    logits[:, 7] = 20.0  # every row's certain pick, unless it avoids it
    seen = torch.zeros(3, vocab, dtype=torch.bool)
    params = [
        SamplingParams(temperature=0.0),
        SamplingParams(temperature=1.0, top_k=0, top_p=1.0),
        SamplingParams(temperature=0.7, top_k=5),
    ]
    avoided = [(7,), (7, 8), ()]
    sampler = RowSampler([(p, seed) for seed, p in enumerate(params)], vocab,
                         torch.device("cpu"), avoided=avoided)  # fmt: skip
    picks = sampler.sample(logits.clone(), seen).tolist()
    assert picks[0] != 7
    assert picks[1] not in (7, 8)
    assert picks[2] == 7
    sampler.keep([2, 0])  # rows leave and move: each keeps its own avoided tokens
    sampler.append(RowSampler([(params[0], 9)], vocab, torch.device("cpu"), avoided=[(7,)]))
    picks = sampler.sample(logits.clone(), seen).tolist()
    assert picks[0] == 7
    assert picks[1] != 7
    assert picks[2] != 7
    # A guess of an avoided token is never kept: it is not in the row's distribution.
    guessing = RowSampler([(params[2], 0)], vocab, torch.device("cpu"), avoided=[(7,)])
    assert 7 not in guessing.speculate(0, logits[:2].clone(), seen[0], [7])
