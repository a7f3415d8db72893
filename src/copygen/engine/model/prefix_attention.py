"""Decoding attention split at the rows' stored prompt prefix.

A copy brief's prompt starts with its channel's conversation prefix (system prompt and one-shot
example, ~170 tokens, the same for every brief of the channel), which prefill.py takes from
the prefix store. Copied into every row's KV, it made decode attention re-read the same
positions once per row: at 16 users (~96 rows of ~300 positions) attention was the larger
half of a step, bound by memory traffic. With this split, a row's KV in the batch holds only
what follows its prefix; a step attends each distinct prefix once for all its rows (their
queries stacked into one call) and each row to its own positions, and merges the two parts by
their log-sum-exps, which is exactly attention over both (up to rounding).

The CPU flash kernel returns the log-sum-exp (``supported``), as does kernels.cpp's decode
attention, which the fused forward passes in where it is faster; elsewhere the batch keeps the
prefix in each row's KV.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from copygen.engine.model.kernels import flash
from copygen.engine.model.prefix import PromptKV

#: A row's prefix: the stored KV and how many of its leading positions the row's prompt uses.
RowPrefix = tuple[PromptKV, int]

#: Attention that also returns each query's log-sum-exp, as kernels.flash:
#: (query, keys, values, additive mask or None, scale) -> (out, lse).
AttentionLse = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, float],
    tuple[torch.Tensor, torch.Tensor],
]


def supported(device: torch.device) -> bool:
    """Whether the attention kernel that also returns the log-sum-exp runs on ``device``."""
    return device.type == "cpu"


@dataclass(frozen=True, slots=True)
class PrefixSlots:
    """The distinct prefixes of a batch's rows, one slot each, stacked per layer (padded to
    the longest, the padding masked out). Holds the stored KV it stacked, so the ``id`` keys
    stay valid while it lives."""

    index: dict[tuple[int, int], int]
    entries: tuple[PromptKV, ...]
    keys: list[torch.Tensor]  # per layer [slots, kv heads, width, head dim]
    values: list[torch.Tensor]
    mask: torch.Tensor | None  # [slots, 1, 1, width] additive; None: every slot fills width

    @classmethod
    def of(cls, prefixes: Sequence[RowPrefix]) -> PrefixSlots:
        distinct: dict[tuple[int, int], RowPrefix] = {}
        for entry, length in prefixes:
            distinct.setdefault((id(entry), length), (entry, length))
        chosen = list(distinct.values())
        width = max(length for _, length in chosen)
        keys, values = [], []
        for layer in range(len(chosen[0][0])):
            if len(chosen) == 1 and chosen[0][0][layer][0].shape[2] == width:
                layer_keys, layer_values = chosen[0][0][layer]  # no copy for a lone prefix
            else:
                layer_keys = torch.cat([_pad_right(e[layer][0], n, width) for e, n in chosen])
                layer_values = torch.cat([_pad_right(e[layer][1], n, width) for e, n in chosen])
            keys.append(layer_keys)
            values.append(layer_values)
        mask = None
        if any(length < width for _, length in chosen):
            columns = torch.arange(width, device=keys[0].device)
            lengths = torch.tensor([length for _, length in chosen], device=keys[0].device)
            keep = columns[None, :] < lengths[:, None]
            mask = additive(keep, keys[0].dtype)[:, None, None, :]
        return cls(
            index={key: slot for slot, key in enumerate(distinct)},
            entries=tuple(entry for entry, _ in chosen),
            keys=keys,
            values=values,
            mask=mask,
        )

    def covers(self, prefixes: Sequence[RowPrefix | None]) -> bool:
        """Whether every prefix in ``prefixes`` has a slot here."""
        return all(p is None or (id(p[0]), p[1]) in self.index for p in prefixes)


@dataclass(frozen=True, slots=True)
class PrefixAttention:
    """One decoding step's plan: which slot and place within it each row's queries take."""

    slots: PrefixSlots
    slot: torch.Tensor  # [rows]: the row's slot (0 for a row without a prefix)
    rank: torch.Tensor  # [rows]: the row's place among its slot's rows
    most: int  # rows of the fullest slot
    missing: torch.Tensor | None  # [rows] bool: rows without a prefix; None: there are none
    lone: bool  # one slot holds every row, in row order

    @classmethod
    def plan(cls, slots: PrefixSlots, prefixes: Sequence[RowPrefix | None]) -> PrefixAttention:
        counts = [0] * len(slots.entries)
        slot, rank = [], []
        for prefix in prefixes:
            if prefix is None:
                slot.append(0)
                rank.append(-1)  # a place after slot 0's rows, its output weighed 0
                continue
            index = slots.index[(id(prefix[0]), prefix[1])]
            slot.append(index)
            rank.append(counts[index])
            counts[index] += 1
        device = slots.keys[0].device
        without = [prefix is None for prefix in prefixes]
        most = max(counts) + any(without)
        return cls(
            slots=slots,
            slot=torch.tensor(slot, device=device),
            rank=torch.tensor([most - 1 if r < 0 else r for r in rank], device=device),
            most=most,
            missing=torch.tensor(without, device=device) if any(without) else None,
            lone=len(counts) == 1 and not any(without),
        )

    def attend(
        self,
        layer: int,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor,
        scale: float,
        attention: AttentionLse = flash,
    ) -> torch.Tensor:
        """Attention of ``query`` [rows, kv heads, queries per kv head, head dim] over each
        row's prefix and its own ``keys``/``values`` (``mask``: additive, [rows, 1, queries or
        1, positions]), each part computed by ``attention``."""
        rows, heads, queries, dim = query.shape
        slots = self.slots
        count = len(slots.entries)
        if self.lone:  # one prefix, every row on it: the rows' queries in row order
            packed = query.transpose(0, 1).reshape(1, heads, rows * queries, dim)
        else:
            places = query.new_zeros(count, heads, self.most, queries, dim)
            places[self.slot, :, self.rank] = query
            packed = places.view(count, heads, self.most * queries, dim)
        prefix_out, prefix_lse = attention(
            packed, slots.keys[layer], slots.values[layer], slots.mask, scale
        )
        if self.lone:
            prefix_out = prefix_out.view(heads, rows, queries, dim).transpose(0, 1)
            prefix_lse = prefix_lse.view(heads, rows, queries).transpose(0, 1)
        else:
            places_out = prefix_out.view(count, heads, self.most, queries, dim)
            prefix_out = places_out[self.slot, :, self.rank]
            prefix_lse = prefix_lse.view(count, heads, self.most, queries)[self.slot, :, self.rank]
        own_out, own_lse = attention(query, keys, values, mask, scale)
        # Softmax over both parts = each part's softmax weighted by its share of the exp-sums;
        # lerp computes in float whatever the dtype (the share itself is rounded to it).
        share = torch.sigmoid(prefix_lse - own_lse)
        if self.missing is not None:
            share = share.masked_fill(self.missing[:, None, None], 0.0)
        return torch.lerp(own_out, prefix_out, share[..., None].to(query.dtype))


def additive(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean keep-mask as the additive mask the kernel takes (0 or -inf)."""
    mask = torch.zeros(keep.shape, dtype=dtype, device=keep.device)
    return mask.masked_fill_(~keep, float("-inf"))


def _pad_right(tensor: torch.Tensor, length: int, width: int) -> torch.Tensor:
    """The first ``length`` positions of ``tensor`` [1, heads, positions, dim], zeros after,
    ``width`` positions in all."""
    return F.pad(tensor[:, :, :length], (0, 0, 0, width - length))
