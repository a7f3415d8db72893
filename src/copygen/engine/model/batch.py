"""The decode batch: the rows being decoded, one left-padded KV cache that rows join and leave
between steps, and one decoding step at a time.

Every per-row structure speaks the same vocabulary: ``keep(order)`` (old row indices in their
new order) and ``append(other)`` (rows after these), like TGI's ``filter(indices)``: the KV
cache (kv.py), the sampler, and the batch's own per-row tensors (attention mask, positions,
seen tokens, last logits).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from typing import Literal

import torch

from copygen.engine.model.detokenize import line_end
from copygen.engine.model.drafter import NgramDrafter
from copygen.engine.model.kv import KVCache, pad_left
from copygen.engine.model.live import LiveRow
from copygen.engine.model.loaded import LoadedModel
from copygen.engine.model.prefill import Prefilled
from copygen.engine.model.prefix import PrefixStore
from copygen.engine.model.prefix_attention import PrefixAttention, PrefixSlots
from copygen.engine.model.sampler import RowSampler
from copygen.engine.protocols import RowSpec
from copygen.generation import RowEvent, RowKey

Finish = Literal["stop", "length"]
#: The least log-probability a token is reported with (a float32 probability can round to 0).
LOGPROB_FLOOR = -100.0


class DecodeBatch:
    """The rows being decoded. Joining prefills only the distinct new prompts (reusing stored
    prefixes) and fans their KV out to the rows; each ``advance`` takes every row's next
    tokens, retires finished rows and runs the next forward pass."""

    #: Masked-out KV columns tolerated beyond the longest row's live ones before squeezing.
    SQUEEZE_SLACK = 64
    #: Leading columns no row uses any more that are worth a copy to drop.
    TRIM_COLUMNS = 16

    def __init__(
        self,
        model: LoadedModel,
        prefixes: PrefixStore,
        drafter: NgramDrafter | None,
        *,
        split_prefixes: bool = False,
    ) -> None:
        self.model = model
        self.prefixes = prefixes
        self.drafter = drafter
        #: Rows keep their stored prompt prefix out of the KV and attend it apart.
        self.split_prefixes = split_prefixes
        #: Positions per row fed in the latest forward pass (1 + the most guesses).
        self.fed_width = 1
        self._reset()

    def _reset(self) -> None:
        device = self.model.device
        self.rows: list[LiveRow] = []
        self.kv = KVCache()
        self.attention = torch.empty(0, 0, dtype=torch.long, device=device)
        self.positions = torch.empty(0, 1, dtype=torch.long, device=device)
        self.seen = torch.empty(0, 0, dtype=torch.bool, device=device)
        self.logits = torch.empty(0, 0, device=device)
        self.sampler = RowSampler([], 1, device)
        self._slots: PrefixSlots | None = None

    # --- rows leave ---------------------------------------------------------------------

    def remove(self, keys: Collection[RowKey]) -> None:
        self.retain([i for i, row in enumerate(self.rows) if row.spec.key not in keys])

    def retain(self, kept: list[int]) -> None:
        """Keep rows ``kept``. Rows from the end fill the places of rows that left, so the KV
        cache moves only them."""
        if len(kept) == len(self.rows):
            return
        if not kept:
            self._reset()
            return
        order = list(range(len(kept)))
        staying = set(kept)
        holes = [place for place in order if place not in staying]
        for place, row in zip(holes, [row for row in kept if row >= len(kept)], strict=True):
            order[place] = row
        self._keep(order)
        self._trim()

    def _keep(self, order: list[int]) -> None:
        index = torch.tensor(order, device=self.attention.device)
        self.rows = [self.rows[i] for i in order]
        self.kv.keep(order)
        self.attention = self.attention[index]
        self.positions = self.positions[index]
        self.seen = self.seen[index]
        self.logits = self.logits[index]
        self.sampler.keep(order)

    def _trim(self) -> None:
        """Drop columns that only padded rows which have left (a copy: worth it when many)."""
        used = self.attention.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first >= self.TRIM_COLUMNS:
            self.attention = self.attention[:, first:]
            self.kv.drop_leading(first)

    # --- rows join ----------------------------------------------------------------------

    def join(self, specs: Sequence[RowSpec]) -> None:
        """Prefill the joining rows (each distinct prompt once, reusing the KV of the longest
        prefix it shares with a recent prompt) and append them to the running batch."""
        joining = Prefilled.of(
            self.model, self.prefixes, self.drafter, specs, split=self.split_prefixes
        )
        if not self.rows:
            self.rows, self.kv, self.sampler = joining.rows, joining.kv, joining.sampler
            self.attention, self.seen = joining.attention, joining.seen
            self.positions, self.logits = joining.positions, joining.logits
            return
        width = max(self.attention.shape[1], joining.attention.shape[1])
        self.kv.append(joining.kv)
        self.attention = torch.cat(
            [pad_left(self.attention, width, 1), pad_left(joining.attention, width, 1)]
        )
        self.positions = torch.cat([self.positions, joining.positions])
        self.seen = torch.cat([self.seen, joining.seen])
        self.logits = torch.cat([self.logits, joining.logits])
        self.sampler.append(joining.sampler)
        self.rows += joining.rows

    # --- one step -----------------------------------------------------------------------

    def advance(self) -> list[RowEvent]:
        """Take each row's next tokens (one sampled, or the guesses the model confirmed plus
        one), report them, retire finished rows, run the next forward pass."""
        if not self.rows:
            return []
        accepted = self._accept()
        events: list[RowEvent] = []
        kept: list[int] = []
        fresh: dict[RowKey, list[int]] = {}
        for index, (row, new) in enumerate(zip(self.rows, accepted, strict=True)):
            event, fresh[row.spec.key] = self._take(row, new)
            events.append(event)
            if event.finish_reason is None:
                kept.append(index)
            elif row.guesses is not None and self.drafter is not None:
                self.drafter.learn(row.guesses.context)
        self.retain(kept)  # may reorder the rows
        if self.rows:
            self._mark_seen([fresh[row.spec.key] for row in self.rows])
            self._feed()
        return events

    def _mark_seen(self, taken: list[list[int]]) -> None:
        rows = [index for index, tokens in enumerate(taken) for _ in tokens]
        tokens = [token for row_tokens in taken for token in row_tokens]
        device = self.seen.device
        self.seen[torch.tensor(rows, device=device), torch.tensor(tokens, device=device)] = True

    def _accept(self) -> list[list[int]]:
        """Each row's new tokens. A row that guessed keeps its guesses up to the first the
        model disagrees with, plus the model's own token there; the rejected guesses' KV
        columns are masked out and the row's position moves past the kept ones."""
        drawing = {i for i, row in enumerate(self.rows) if row.draft_logits is not None}
        sampled = self.sampler.sample(self.logits, self.seen, skip=drawing)
        self._note_logprobs(sampled)
        chosen = sampled.tolist()
        width, fed = self.attention.shape[1], self.fed_width
        result: list[list[int]] = []
        moved: list[int] = []
        for index, (row, token) in enumerate(zip(self.rows, chosen, strict=True)):
            guesses = row.guesses
            if guesses is None or not guesses.drafts or self.drafter is None:
                result.append([token])
                moved.append(0)
                continue
            guessed = len(guesses.drafts)
            drawn = None
            if row.draft_logits is not None:
                drawn = self.sampler.speculate(
                    index, row.draft_logits, self.seen[index], guesses.drafts
                )
                row.draft_logits = None
            yielded, kept = self.drafter.verify(guesses, drawn)
            result.append(yielded)
            moved.append(kept)
            if kept < guessed:
                self.attention[index, width - fed + 1 + kept : width - fed + 1 + guessed] = 0
        if any(moved):
            self.positions += torch.tensor(moved, device=self.positions.device)[:, None]
        return result

    def _note_logprobs(self, sampled: torch.Tensor) -> None:
        """Each reporting row's log-probability of the token it drew, under the logits it was
        drawn from (the sampler steered and penalised them in place; before temperature).
        Such rows never guess, so this is their one new token."""
        wanting = [i for i, row in enumerate(self.rows) if row.spec.request.logprobs]
        if not wanting:
            return
        logits, tokens = self.logits, sampled
        if len(wanting) < len(self.rows):
            index = torch.tensor(wanting, device=sampled.device)
            logits, tokens = logits[index], tokens[index]
        # softmax is one fused pass (logsumexp took twice as long: 4 ms a step at 96 rows);
        # the floor keeps a vanishing (or undefined) probability finite, as JSON needs.
        probs = logits.float().softmax(dim=-1).gather(1, tokens[:, None])[:, 0]
        found = probs.log().nan_to_num(nan=LOGPROB_FLOOR).clamp(min=LOGPROB_FLOOR)
        for row, value in zip(wanting, found.tolist(), strict=True):
            self.rows[row].logprobs.append(value)

    def _logprob(self, row: LiveRow) -> float | None:
        """The mean log-probability of a finished reporting row's tokens (a final stop token
        not counted); None for a row that does not report or wrote nothing."""
        values = row.logprobs[: len(row.tokens)]
        if row.tokens and row.tokens[-1] in self.model.stop_ids:
            values = values[:-1]
        return sum(values) / len(values) if values else None

    def _take(self, row: LiveRow, new: list[int]) -> tuple[RowEvent, list[int]]:
        """Append the row's new tokens up to a stop token or its token limit; its event."""
        request = row.spec.request
        limit = request.sampling.max_new_tokens
        stop_ids = self.model.stop_ids
        finish: Finish | None = None
        taken: list[int] = []
        for token in new:
            taken.append(token)
            if token in stop_ids:
                finish = "stop"
                break
            if len(row.tokens) + len(taken) >= limit:
                break
        row.tokens += taken
        if row.guesses is not None:
            row.guesses.extend(taken)
        body = taken[:-1] if finish == "stop" else taken
        new_chars = len(row.text.push(body))
        if finish is None and len(row.tokens) >= limit:
            finish = "length"
        if finish is None and request.max_chars is not None:
            finish = "length" if len(row.text.text) > request.max_chars else None
        found = self._ends(row, new_chars)
        if found or finish is not None:
            new_chars += len(row.text.finish())
            found = found or self._ends(row, new_chars)
        text = row.text.text
        for still_there, cut in found:
            # Several tokens may have come at once: count only those up to the stop.
            while len(taken) > 1 and still_there(self._whole_text(row, drop=1)):
                row.tokens.pop()
                taken.pop()
            finish, text = "stop", text[:cut]
        delta = text[row.emitted :]
        row.emitted = max(row.emitted, len(text))
        event = RowEvent(
            key=row.spec.key,
            delta=delta,
            finish_reason=finish,
            text=text if finish else "",
            prompt_tokens=row.prompt_tokens,
            completion_tokens=len(row.tokens),
            logprob=self._logprob(row) if finish else None,
        )
        return event, taken

    @staticmethod
    def _ends(row: LiveRow, new_chars: int) -> list[tuple[Callable[[str], bool], int]]:
        """Where the row's text ends early, if the last ``new_chars`` characters ended it:
        its request's stop strings (each in the text cut by those before), then the end of
        its first line for a ``single_line`` request; each with a test that says whether a
        text (prefix included) still contains it."""
        request, floor = row.spec.request, len(row.text.prefix)
        ends: list[tuple[Callable[[str], bool], int]] = []
        for stop, cut in row.text.find_stops(request.stop, new_chars) if request.stop else []:
            ends.append((functools.partial(_has_stop, stop, floor), cut))
        line = row.text.find_line_end(new_chars) if request.single_line else None
        if line is not None and (not ends or line < ends[-1][1]):
            ends.append((functools.partial(_has_line_end, floor), line))
        return ends

    def _whole_text(self, row: LiveRow, drop: int = 0) -> str:
        """The row's text decoded in one go (without a final stop token), less ``drop`` last
        tokens: O(n), only for a step whose several new tokens completed a stop string."""
        body = row.tokens[: len(row.tokens) - drop]
        if body and body[-1] in self.model.stop_ids:
            body = body[:-1]
        return row.text.prefix + self.model.decode(body)

    def _squeeze(self) -> None:
        """Drop the masked-out KV columns once they dominate the cache. With speculation every
        step adds 1 + the most guesses columns to every row, and each row keeps only what the
        model confirmed; without this, long outputs would hold up to 5x the KV they need."""
        live = self.attention.bool()
        width = int(live.sum(dim=1).max())
        if self.attention.shape[1] <= 2 * width + self.SQUEEZE_SLACK:
            return
        # Per row: its live columns in order, right-aligned in `width` slots (a row with fewer
        # keeps some masked columns on the left, still masked).
        index = torch.argsort(live.to(torch.int8), dim=1, stable=True)[:, -width:]
        self.attention = torch.gather(self.attention, 1, index)
        self.kv.gather_positions(index)

    def _feed(self) -> None:
        """The next forward pass: each row's last token, then its guesses (padded where a
        row has fewer guesses than another; padded slots are masked out)."""
        self._squeeze()
        rows = self.rows
        device = self.attention.device
        drafts = [self._propose(row) for row in rows]
        width = 1 + max(len(d) for d in drafts)
        self.fed_width = width
        pad = self.model.pad_id
        inputs = [
            [row.tokens[-1], *d] + [pad] * (width - 1 - len(d))
            for row, d in zip(rows, drafts, strict=True)
        ]
        columns = self.attention.new_zeros(len(rows), width)
        for index, d in enumerate(drafts):
            columns[index, : 1 + len(d)] = 1
        self.attention = torch.cat([self.attention, columns], dim=1)
        self.positions = self.positions + 1
        step = {
            "input_ids": torch.tensor(inputs, device=device),
            "attention_mask": self.attention,
            "position_ids": self.positions + torch.arange(width, device=device)[None, :],
        }
        prefix = self._prefix_plan()
        if width == 1:
            self.logits = self.model.forward(self.kv, prefix=prefix, **step)
            return
        # Logits only where needed: each row's first position and the guessing rows' guesses.
        firsts: list[int] = []
        select: list[int] = []
        for index, d in enumerate(drafts):
            firsts.append(len(select))
            select += range(index * width, index * width + 1 + len(d))
        logits = self.model.forward(
            self.kv, select=torch.tensor(select, device=device), prefix=prefix, **step
        )
        self.logits = logits[torch.tensor(firsts, device=device)].float()
        targets = logits.max(dim=-1).indices.tolist()
        for row, d, first in zip(rows, drafts, firsts, strict=True):
            if row.guesses is not None and d:
                row.guesses.drafts = d
                row.guesses.targets = targets[first : first + 1 + len(d)]
                if row.spec.request.sampling.temperature > 0:
                    row.draft_logits = logits[first : first + 1 + len(d)].float()

    def _prefix_plan(self) -> PrefixAttention | None:
        """Where the rows' split-off prefixes are (None: no row has one). The stacked
        prefixes are rebuilt only when a row's prefix has no slot, or most slots are unused."""
        prefixes = [row.prefix for row in self.rows]
        used = [prefix for prefix in prefixes if prefix is not None]
        if not used:
            self._slots = None
            return None
        slots = self._slots
        if (
            slots is None
            or not slots.covers(used)
            or len(slots.entries) > 2 * len({(id(e), n) for e, n in used})
        ):
            slots = self._slots = PrefixSlots.of(used)
        return PrefixAttention.plan(slots, prefixes)

    def _propose(self, row: LiveRow) -> list[int]:
        if self.drafter is None or row.guesses is None:
            return []
        left = row.spec.request.sampling.max_new_tokens - len(row.tokens) - 1
        return self.drafter.propose(row.guesses, min(row.guesses.limit, left))


def _has_stop(stop: str, floor: int, text: str) -> bool:
    return stop in text[floor:]


def _has_line_end(floor: int, text: str) -> bool:
    return line_end(text, floor) is not None
