"""The running batch's KV cache: the only module that writes key and value tensors.

One ``GrowingLayer`` per model layer holds [rows, kv heads, positions, head dim]; ``KVCache``
is the batch's view of them, with the same row vocabulary as every other per-row structure
(``keep(order)`` / ``append(other)``) plus the position reshapes the batch needs (drop leading
positions, keep chosen positions per row) and the reads for the prefix store.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from copygen.engine.model.prefix import PromptKV


class GrowingLayer(DynamicLayer):  # type: ignore[misc]
    """A KV-cache layer with spare room along the row and sequence axes.

    transformers' DynamicLayer appends each new token with ``torch.cat`` of the whole cache,
    which measured 37% of a decoding step here at batch 64. This layer writes new tokens into
    a preallocated buffer in place and hands out a view, like a growable array. Rows that
    leave are filled by moving rows from the end (``keep_rows``) and joining rows are written
    into spare rows (``append_rows``), so reshaping the batch copies only the rows that move;
    the buffer is rebuilt (one copy) when it fills up or after a reshape that had to build new
    tensors (``_replace``). Every write to ``keys``/``values`` is a method of this class.
    """

    keys: torch.Tensor
    values: torch.Tensor
    _key_buffer: torch.Tensor | None = None
    _value_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        rows = key_states.shape[0]
        length = self.keys.shape[-2] if self.keys.numel() else 0
        added = key_states.shape[-2]
        if not self._backed(rows) or length + added > self._capacity():
            self._rebuild(rows, length, added, key_states, value_states)
        assert self._key_buffer is not None
        assert self._value_buffer is not None
        self._key_buffer[:rows, :, length : length + added] = key_states
        self._value_buffer[:rows, :, length : length + added] = value_states
        self.keys = self._key_buffer[:rows, :, : length + added]
        self.values = self._value_buffer[:rows, :, : length + added]
        return self.keys, self.values

    def keep_rows(self, order: list[int], index: torch.Tensor) -> None:
        """Keep rows ``order`` (old indices, in their new order). In place when each kept row
        either stays where it is or moves into a row that left."""
        rows, length = len(order), self.keys.shape[-2]
        if self._backed(self.keys.shape[0]):
            assert self._key_buffer is not None
            assert self._value_buffer is not None
            moves = [(new, old) for new, old in enumerate(order) if new != old]
            if moves:
                device = self._key_buffer.device
                target = torch.tensor([new for new, _ in moves], device=device)
                source = torch.tensor([old for _, old in moves], device=device)
                for buffer in (self._key_buffer, self._value_buffer):
                    buffer[target, :, :length] = buffer[source, :, :length]
            self.keys = self._key_buffer[:rows, :, :length]
            self.values = self._value_buffer[:rows, :, :length]
        else:
            self._replace(self.keys[index], self.values[index])

    def append_rows(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add rows whose KV is right-aligned with this layer's (left-padded to its length)."""
        rows, length = self.keys.shape[0], self.keys.shape[-2]
        added, width = keys.shape[0], keys.shape[-2]
        buffer = self._key_buffer
        if (
            width <= length
            and self._backed(rows)
            and buffer is not None
            and rows + added <= buffer.shape[0]
        ):
            assert self._value_buffer is not None
            for target, new in ((buffer, keys), (self._value_buffer, values)):
                target[rows : rows + added, :, : length - width] = 0
                target[rows : rows + added, :, length - width : length] = new
            self.keys = buffer[: rows + added, :, :length]
            self.values = self._value_buffer[: rows + added, :, :length]
            return
        width = max(length, width)
        self._replace(
            torch.cat([pad_left(self.keys, width, 2), pad_left(keys, width, 2)]),
            torch.cat([pad_left(self.values, width, 2), pad_left(values, width, 2)]),
        )

    def drop_leading(self, first: int) -> None:
        """Drop the first ``first`` positions of every row."""
        self._replace(self.keys[:, :, first:], self.values[:, :, first:])

    def gather_positions(self, index: torch.Tensor) -> None:
        """Keep, per row, the positions ``index[row]`` ([rows, width], in order)."""
        keys, values = self.keys, self.values
        self._replace(
            keys.gather(2, index[:, None, :, None].expand(-1, keys.shape[1], -1, keys.shape[3])),
            values.gather(
                2, index[:, None, :, None].expand(-1, values.shape[1], -1, values.shape[3])
            ),
        )

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Rows ``indices`` (repeats allowed: a prompt fanned out to its rows)."""
        self._replace(self.keys[indices], self.values[indices])

    def assign(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Start from these keys and values (a prefill that reuses stored prefixes)."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
        self._replace(keys, values)

    def _replace(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """New tensors that are not the buffer: the next ``update`` rebuilds it (one copy)."""
        self.keys, self.values = keys, values
        self._key_buffer = self._value_buffer = None

    def _capacity(self) -> int:
        return 0 if self._key_buffer is None else self._key_buffer.shape[2]

    def _backed(self, rows: int) -> bool:
        """Whether ``keys``/``values`` are views of the buffer's first ``rows`` rows."""
        buffer = self._key_buffer
        return buffer is not None and buffer.shape[0] >= rows

    def _rebuild(
        self, rows: int, length: int, added: int, keys: torch.Tensor, values: torch.Tensor
    ) -> None:
        capacity = max(64, 2 * (length + added))
        spare_rows = rows + max(4, rows // 2)  # room for joiners without a rebuild
        shape = (spare_rows, keys.shape[1], capacity, keys.shape[3])
        self._key_buffer = keys.new_empty(shape)
        self._value_buffer = values.new_empty((*shape[:3], values.shape[3]))
        if length:
            self._key_buffer[:rows, :, :length] = self.keys
            self._value_buffer[:rows, :, :length] = self.values


class KVCache:
    """The KV of the rows being decoded (left-padded to one width), layer by layer."""

    def __init__(self) -> None:
        #: What transformers' own forward takes as ``past_key_values``.
        self.cache: Any = DynamicCache()
        self.cache.layer_class_to_replicate = GrowingLayer

    @property
    def layers(self) -> list[GrowingLayer]:
        return list(self.cache.layers)

    def layers_for(self, count: int) -> list[GrowingLayer]:
        """The first ``count`` layers, creating the missing ones (before the first forward)."""
        while len(self.cache.layers) < count:
            self.cache.layers.append(GrowingLayer())
        return list(self.cache.layers[:count])

    def keep(self, order: list[int]) -> None:
        """Keep rows ``order`` (old indices, in their new order); in place where it can."""
        if not self.cache.layers:
            return
        index = torch.tensor(order, device=self.cache.layers[0].keys.device)
        for layer in self.cache.layers:
            layer.keep_rows(order, index)

    def append(self, other: KVCache) -> None:
        """Add ``other``'s rows after these, both right-aligned to the wider of the two."""
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.append_rows(theirs.keys, theirs.values)

    def fan_out(self, index: torch.Tensor) -> None:
        """Row ``i`` becomes old row ``index[i]`` (one prefilled prompt → its sampled rows)."""
        self.cache.batch_select_indices(index)

    def drop_leading(self, first: int) -> None:
        for layer in self.cache.layers:
            layer.drop_leading(first)

    def gather_positions(self, index: torch.Tensor) -> None:
        for layer in self.cache.layers:
            layer.gather_positions(index)

    @classmethod
    def from_prefixes(
        cls,
        reuse: list[tuple[int, PromptKV | None]],
        width: int,
        follow: list[tuple[int, PromptKV | None]] | None = None,
        follow_width: int = 0,
    ) -> KVCache:
        """A cache whose row ``i`` holds the first ``reuse[i][0]`` positions of the stored
        prompt KV ``reuse[i][1]``, right-aligned in ``width`` positions (zeros before), then
        likewise the first ``follow[i][0]`` positions of ``follow[i][1]`` in ``follow_width``
        (a stored continuation of that prefix)."""
        kv = cls()
        segments = [(reuse, width), (follow or [], follow_width)]
        segments = [(parts, size) for parts, size in segments if size]
        if not segments:
            return kv
        donor = next(entry for parts, _ in segments for _, entry in parts if entry is not None)
        for layer_index, (donor_keys, donor_values) in enumerate(donor):
            keys, values = [], []
            for row in range(len(reuse)):
                row_keys, row_values = [], []
                for parts, size in segments:
                    length, entry = parts[row]
                    k, v = (donor_keys, donor_values) if entry is None else entry[layer_index]
                    length = 0 if entry is None else length
                    row_keys.append(pad_left(k[:, :, :length], size, 2))
                    row_values.append(pad_left(v[:, :, :length], size, 2))
                keys.append(torch.cat(row_keys, dim=2))
                values.append(torch.cat(row_values, dim=2))
            layer = GrowingLayer()
            layer.assign(torch.cat(keys), torch.cat(values))
            kv.cache.layers.append(layer)
        return kv

    def prompt_kv(self, row: int, spans: list[tuple[int, int]]) -> PromptKV:
        """Row ``row``'s positions ``[start, stop)`` of each span, joined: a copy to store."""
        stored = []
        for layer in self.cache.layers:
            keys = [layer.keys[row : row + 1, :, start:stop] for start, stop in spans]
            values = [layer.values[row : row + 1, :, start:stop] for start, stop in spans]
            stored.append((torch.cat(keys, dim=2), torch.cat(values, dim=2)))
        return stored


def pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """``tensor`` with zeros prepended along ``dim`` up to ``width``."""
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
