"""Per-row logits processing and sampling, vectorised over the batch."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch

from copygen.domain import SamplingParams

#: splitmix64's constants as signed 64-bit integers (torch has no unsigned int64 arithmetic).
_GOLDEN = 0x9E3779B97F4A7C15 - 2**64
_MIX_1 = 0xBF58476D1CE4E5B9 - 2**64
_MIX_2 = 0x94D049BB133111EB - 2**64
_TOKEN = 0xD6E8FEB86659FD93 - 2**64


def _shift(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 values (torch's >> is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    z = (z ^ _shift(z, 30)) * _MIX_1
    z = (z ^ _shift(z, 27)) * _MIX_2
    return z ^ _shift(z, 31)


def uniforms(seeds: torch.Tensor, draws: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Uniform numbers in (0, 1), one per (row, token): a counter-based generator keyed by the
    row's seed, how many draws the row made before, and the token id. Nothing else (not the
    batch, not the order of the candidates) enters, so a seeded row draws the same tokens
    whatever shares its batch, and a whole batch draws in a few vectorised operations."""
    key = _mix(seeds[:, None] + _GOLDEN * (draws[:, None] + 1))
    z = _mix(key + tokens.long() * _TOKEN)
    return (_shift(z, 11).double() + 0.5) / 2.0**53


def race(probs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per row, the index i maximising probs[i] / E[i] with E = -log(noise) exponential: the
    exponential race picks i with probability probs[i] / sum(probs) (zeros never win)."""
    return (probs.double() / -noise.log()).argmax(dim=-1)


def nucleus(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Top-p over each row's candidates in rank order: a token is dropped once the tokens
    ranked above it already reach the row's ``top_p``."""
    return probs.masked_fill(probs.cumsum(dim=-1) - probs > top_p[:, None], 0.0)


class RowSampler:
    """Per-row logits processing and sampling, vectorised over the batch.

    Same order as transformers' processors: repetition penalty, temperature, top-k, top-p.
    A row's ``avoided`` tokens (its request's avoided words and characters) are never drawn.
    Randomness comes from ``uniforms`` keyed by each row's seed and draw count, so a seeded
    row draws the same tokens whatever else shares its batch, and a step samples every row at
    once (a ``torch.multinomial`` per row cost 0.2 ms of CPU each: 50 ms a step at 256 rows
    on an H200, more than the forward pass).
    """

    #: Candidates a row without top-k is first drawn among (``_probe``), before a full sort.
    NUCLEUS_PROBE = 256

    def __init__(
        self,
        rows: Sequence[tuple[SamplingParams, int]],
        vocab_size: int,
        device: torch.device,
        avoided: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.temperature = torch.tensor([p.temperature for p, _ in rows], device=device)
        self.top_p = torch.tensor([p.top_p for p, _ in rows], device=device)
        self.top_k = torch.tensor([p.top_k or vocab_size for p, _ in rows], device=device)
        self.penalty = torch.tensor([p.repetition_penalty for p, _ in rows], device=device)
        self.seeds = torch.tensor([seed for _, seed in rows], device=device, dtype=torch.long)
        self.draws = torch.zeros(len(rows), device=device, dtype=torch.long)
        self.vocab_size = vocab_size
        empty = torch.empty(0, dtype=torch.long, device=device)
        self.avoided = (
            [torch.tensor(ids, dtype=torch.long, device=device) if ids else empty
             for ids in avoided]
            if avoided else [empty] * len(rows)
        )  # fmt: skip
        self._avoid_index: tuple[torch.Tensor, torch.Tensor] | None = None

    def keep(self, order: list[int]) -> None:
        """Keep rows ``order`` (old indices, in their new order)."""
        index = torch.tensor(order, device=self.temperature.device, dtype=torch.long)
        self.temperature = self.temperature[index]
        self.top_p = self.top_p[index]
        self.top_k = self.top_k[index]
        self.penalty = self.penalty[index]
        self.seeds = self.seeds[index]
        self.draws = self.draws[index]
        self.avoided = [self.avoided[i] for i in order]
        self._avoid_index = None

    def append(self, other: RowSampler) -> None:
        """Add ``other``'s rows after these."""
        self.temperature = torch.cat([self.temperature, other.temperature])
        self.top_p = torch.cat([self.top_p, other.top_p])
        self.top_k = torch.cat([self.top_k, other.top_k])
        self.penalty = torch.cat([self.penalty, other.penalty])
        self.seeds = torch.cat([self.seeds, other.seeds])
        self.draws = torch.cat([self.draws, other.draws])
        self.avoided += other.avoided
        self._avoid_index = None

    def sample(
        self, logits: torch.Tensor, seen: torch.Tensor, skip: Collection[int] = ()
    ) -> torch.Tensor:
        """The next token of each row (rows in ``skip`` draw nothing: their value is the greedy
        token, unused). Changes ``logits`` in place (avoided tokens, the repetition penalty)."""
        self._avoid(logits)
        self._penalise(logits, seen, slice(None))
        drawing = self.temperature > 0
        if skip:
            drawing[list(skip)] = False
        everyone = bool(drawing.all())
        # max() is ~2.5x faster than argmax() on the CPU; a full-width pass: only when needed
        chosen = None if everyone else logits.max(dim=-1).indices
        if chosen is not None and not bool(drawing.any()):
            return chosen
        whole = drawing & (self.top_k >= self.vocab_size) & (self.top_p >= 1.0)
        picked = torch.zeros_like(self.draws)
        for rows, draw in ((drawing & ~whole, self._draw_top), (whole, self._draw_whole)):
            count = int(rows.sum())
            if count == len(rows):
                picked = draw(logits, slice(None))
            elif count:
                index = rows.nonzero()[:, 0]
                picked[index] = draw(logits[index], index)
        self.draws += drawing.long()
        return picked if chosen is None else torch.where(drawing, picked, chosen)

    def _draw_top(self, logits: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
        """One token per row from its top-k / top-p candidates (the exponential race)."""
        probs, indices = self._top(logits, rows)
        noise = uniforms(self.seeds[rows], self.draws[rows], indices)
        return indices.gather(1, race(probs, noise)[:, None])[:, 0]

    def _draw_whole(self, logits: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
        """One token per row from the whole vocabulary (top-k 0, top-p 1: OpenAI's defaults)
        by the inverse of its cumulative distribution at one uniform per row: no sort (top-k
        over the whole vocabulary was a full sort of 49,152 logits per row, 44% of the model
        thread under 16 sampled chat clients)."""
        scaled = logits / self.temperature[rows][:, None]
        cumulative = scaled.softmax(dim=-1).cumsum_(dim=-1)
        # token -2: the row's one number for this draw, never a candidate's
        point = uniforms(self.seeds[rows], self.draws[rows], torch.full_like(scaled[:, :1], -2))
        target = point.to(cumulative.dtype) * cumulative[:, -1:]
        picked = torch.searchsorted(cumulative, target)[:, 0]
        return picked.clamp_(max=self.vocab_size - 1)

    def speculate(
        self, row: int, logits: torch.Tensor, seen: torch.Tensor, drafts: Sequence[int]
    ) -> list[int]:
        """Speculative sampling for one sampled row, exact. ``logits`` [1 + len(drafts),
        vocab] are the model's at the row's last token and after each guess. At position j,
        with p the processed distribution there (the penalty also counts the guesses before
        j), guess j is kept with probability p(guess), like a draft that is a point mass;
        otherwise a token is drawn from p without the guess, renormalised, and the step ends.
        When every guess is kept, one more token is drawn from the last position. The tokens
        are distributed exactly as drawing one per step would give, and only the row's own
        seed and draw count are used, so a seed fixes them whatever shares the batch."""
        seen = seen[None].clone()
        own = slice(row, row + 1)
        seeds = self.seeds[own]
        yielded: list[int] = []
        for position, scores in enumerate(logits):
            scores = scores[None].float()
            scores[0, self.avoided[row]] = float("-inf")
            self._penalise(scores, seen, own)
            probs, index = (t[0] for t in self._top(scores, own))
            probs = probs / probs.sum()  # renormalised after top-p, as multinomial would
            if position < len(drafts):
                guess = drafts[position]
                hit = (index == guess).nonzero().flatten()
                p_guess = float(probs[hit[0]]) if len(hit) else 0.0
                # token -1: the acceptance test's own number, never a candidate's
                accept = uniforms(seeds, self._draw(row), torch.tensor([[-1]], device=seeds.device))
                if float(accept) < p_guess:
                    yielded.append(guess)
                    seen[0, guess] = True
                    continue
                if len(hit):
                    probs[hit[0]] = 0.0
            pick = int(race(probs[None], uniforms(seeds, self._draw(row), index[None]))[0])
            yielded.append(int(index[pick]))
            return yielded
        raise AssertionError("unreachable: the last position always draws")

    def _draw(self, row: int) -> torch.Tensor:
        """The row's draw count before this draw, as a one-row tensor; counts the draw."""
        count = self.draws[row : row + 1].clone()
        self.draws[row] += 1
        return count

    def _avoid(self, logits: torch.Tensor) -> None:
        """Every row's avoided tokens out of its logits, in place: one indexed write for the
        whole batch (the indices are built when the rows change, not every step)."""
        if self._avoid_index is None:
            counts = torch.tensor([len(ids) for ids in self.avoided], device=self.seeds.device)
            self._avoid_index = (
                torch.arange(len(self.avoided), device=counts.device).repeat_interleave(counts),
                torch.cat(self.avoided) if self.avoided else counts,
            )
        rows, tokens = self._avoid_index
        if len(rows):
            logits[rows, tokens] = float("-inf")

    def _penalise(self, logits: torch.Tensor, seen: torch.Tensor, rows: slice) -> None:
        """The repetition penalty of ``rows``, in place, on their seen tokens only: a few
        hundred per row, not the whole vocabulary (full-width passes over [rows, vocab] were
        6 ms of a 50 ms step at 32 rows)."""
        penalty = self.penalty[rows]
        if not bool((penalty != 1.0).any()):
            return
        row, tokens = seen.nonzero(as_tuple=True)
        values = logits[row, tokens]
        factor = penalty[row]
        logits[row, tokens] = torch.where(values > 0, values / factor, values * factor)

    def _top(
        self, logits: torch.Tensor, rows: slice | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The processed distribution of ``rows`` (their logits, penalised): probabilities of
        each row's top-k tokens after temperature, with top-p applied, and the token ids."""
        top_k, top_p = self.top_k[rows], self.top_p[rows]
        temperature = self.temperature[rows].clamp(min=1e-5)[:, None]
        k_max = min(int(top_k.max()), self.vocab_size)
        if k_max > self.NUCLEUS_PROBE:
            probed = self._probe(logits, top_k, top_p, temperature)
            if probed is not None:
                return probed
        # A positive temperature keeps the order: scale the k kept logits, not the vocabulary.
        values, indices = logits.topk(k_max, dim=-1)
        values = values / temperature
        ranks = torch.arange(k_max, device=logits.device)[None, :]
        values = values.masked_fill(ranks >= top_k[:, None], float("-inf"))
        return nucleus(values.softmax(dim=-1), top_p), indices

    def _probe(
        self,
        logits: torch.Tensor,
        top_k: torch.Tensor,
        top_p: torch.Tensor,
        temperature: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``_top`` without sorting the whole vocabulary, where it can: the ``NUCLEUS_PROBE``
        best tokens, each row's probabilities normalised as ``_top`` would (over the whole
        vocabulary for a row without top-k, over its top-k otherwise). Exact when every row
        without top-k finds its nucleus among them; None when a row does not (or has a top-k
        between the probe and the vocabulary)."""
        probe = self.NUCLEUS_PROBE
        whole = top_k >= self.vocab_size
        if bool(((top_k > probe) & ~whole).any()):
            return None
        values, indices = logits.topk(probe, dim=-1)
        values = values / temperature
        ranks = torch.arange(probe, device=logits.device)[None, :]
        cut = values.masked_fill(ranks >= top_k[:, None], float("-inf")).softmax(dim=-1)
        everything = (values - torch.logsumexp(logits / temperature, dim=-1, keepdim=True)).exp()
        if not bool((everything.sum(dim=-1) > top_p)[whole].all()):
            return None
        return nucleus(torch.where(whole[:, None], everything, cut), top_p), indices
