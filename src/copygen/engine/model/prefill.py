"""Joining rows' prefill: each distinct prompt once, starting from a stored prefix's KV where
there is one, fanned out to its rows in the decode batch's per-row layout.

Two kinds of stored prefix. Shared (the default, exact): a chat prompt's conversation before its
last message (system prompt, one-shot examples) is always prefilled alone and kept, and the
rest of the prompt always runs on top of it, hit or miss, so a result never depends on what ran
before. Opportunistic (COPYGEN_PREFIX_CACHE): the longest common prefix with any recent prompt,
more reuse, but in bf16 a result may then depend on which prompt was seen first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from copygen.domain import GenerationRequest
from copygen.engine.model.detokenize import Detokenizer
from copygen.engine.model.drafter import NgramDrafter, RowGuesses, speculates
from copygen.engine.model.kv import KVCache
from copygen.engine.model.live import LiveRow
from copygen.engine.model.loaded import LoadedModel
from copygen.engine.model.prefix import PrefixStore, PromptKV
from copygen.engine.model.sampler import RowSampler
from copygen.engine.protocols import RowSpec


@dataclass(slots=True)
class Prefilled:
    """Joining rows after their prefill, in the batch's per-row layout."""

    rows: list[LiveRow]
    kv: KVCache
    attention: torch.Tensor
    positions: torch.Tensor
    seen: torch.Tensor
    logits: torch.Tensor
    sampler: RowSampler

    @classmethod
    def of(
        cls,
        model: LoadedModel,
        prefixes: PrefixStore,
        drafter: NgramDrafter | None,
        specs: Sequence[RowSpec],
        *,
        split: bool = False,
    ) -> Prefilled:
        """Prefill ``specs``' distinct prompts. With ``split``, the reused prefixes' positions
        are dropped from the rows' KV afterwards and each row references its prefix instead
        (prefix_attention.py)."""
        device = model.device
        texts = [model.prompt_text(spec.request) for spec in specs]
        unique = list(dict.fromkeys(texts))
        slot = {text: i for i, text in enumerate(unique)}
        token_lists = model.encode(unique)
        follow = None
        if prefixes.budget_tokens:  # opportunistic: the longest prefix of any recent prompt
            reuse = [prefixes.lookup(tokens) for tokens in token_lists]
        else:
            first = {text: spec.request for spec, text in zip(specs, texts, strict=True)}
            reuse = [
                shared_prefix(model, prefixes, _conversation_prefix(model, first[text]), tokens)
                for text, tokens in zip(unique, token_lists, strict=True)
            ]
            if prefixes.continuation_budget_tokens:
                follow = [
                    _continuation(model, prefixes, first[text], tokens, found)
                    for text, tokens, found in zip(unique, token_lists, reuse, strict=True)
                ]
        kv, attention, positions, input_ids = prefill_inputs(model, token_lists, reuse, follow)
        logits = model.forward(
            kv,
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            logits_to_keep=1,
        )
        if prefixes.budget_tokens:
            _remember(prefixes, token_lists, reuse, kv, input_ids.shape[1])
        prefix_width = max(length for length, _ in reuse)
        if split and prefix_width:
            kv.drop_leading(prefix_width)
            attention = attention[:, prefix_width:]
        fan_out = torch.tensor([slot[text] for text in texts], device=device)
        kv.fan_out(fan_out)
        seen = torch.zeros(len(unique), logits.shape[-1], dtype=torch.bool, device=device)
        for row, tokens in enumerate(token_lists):
            seen[row, torch.tensor(tokens, device=device)] = True
        avoided = {spec.key: model.avoided_ids(spec.request) for spec in specs}
        rows = []
        for spec, text in zip(specs, texts, strict=True):
            prompt = token_lists[slot[text]]
            live = LiveRow(spec, len(prompt), Detokenizer(model.decode, spec.request.prefix))
            length, entry = reuse[slot[text]]
            if split and entry is not None and length:
                live.prefix = (entry, length)
            if (  # a row that avoids tokens draws every one itself (a guess never skips them)
                drafter is not None
                and avoided[spec.key] == ()
                and not spec.request.logprobs  # nor does one that reports its likelihood
                and speculates(spec.request.sampling, sampled_rows=drafter.sampled)
            ):
                live.guesses = RowGuesses()
                live.guesses.extend(prompt)
            rows.append(live)
        sampler = RowSampler(
            [(spec.request.sampling, spec.seed) for spec in specs],
            model.vocab_size,
            device,
            avoided=[avoided[spec.key] for spec in specs],
        )
        return cls(
            rows=rows,
            kv=kv,
            attention=attention[fan_out],
            positions=positions[fan_out][:, -1:],
            seen=seen[fan_out],
            logits=logits[fan_out],
            sampler=sampler,
        )


def prefill_inputs(
    model: LoadedModel,
    token_lists: list[list[int]],
    reuse: list[tuple[int, PromptKV | None]],
    follow: list[tuple[int, PromptKV | None]] | None = None,
) -> tuple[KVCache, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cache, mask, positions and input ids for a prefill that starts from reused prefixes
    (and, with ``follow``, each prefix's stored continuation after it).

    Row layout: ``[pad][reused prefix][pad][continuation][pad][new suffix]`` — reused parts
    right-aligned in the cache, suffixes right-aligned in the input; padding is masked out and
    positions are explicit, so the holes change nothing.
    """
    device = model.device
    follow = follow or [(0, None)] * len(token_lists)
    prefix_width = max(length for length, _ in reuse)
    follow_width = max(length for length, _ in follow)
    reused = [p + f for (p, _), (f, _) in zip(reuse, follow, strict=True)]
    suffixes = [tokens[length:] for tokens, length in zip(token_lists, reused, strict=True)]
    suffix_width = max(len(suffix) for suffix in suffixes)
    before = prefix_width + follow_width
    input_ids = torch.full((len(suffixes), suffix_width), model.pad_id, dtype=torch.long)
    attention = torch.zeros(len(suffixes), before + suffix_width, dtype=torch.long)
    positions = torch.zeros(len(suffixes), suffix_width, dtype=torch.long)
    for row, (suffix, (length, _), (more, _)) in enumerate(
        zip(suffixes, reuse, follow, strict=True)
    ):
        start = suffix_width - len(suffix)
        input_ids[row, start:] = torch.tensor(suffix)
        attention[row, prefix_width - length : prefix_width] = 1
        attention[row, before - more : before] = 1
        attention[row, before + start :] = 1
        positions[row, start:] = torch.arange(length + more, length + more + len(suffix))
    kv = KVCache.from_prefixes(reuse, prefix_width, follow, follow_width)
    return kv, attention.to(device), positions.to(device), input_ids.to(device)


def _remember(
    prefixes: PrefixStore,
    token_lists: list[list[int]],
    reuse: list[tuple[int, PromptKV | None]],
    kv: KVCache,
    suffix_width: int,
) -> None:
    """Store each new prompt's KV (prefix part and suffix part, without padding)."""
    stored = _row_kvs(token_lists, reuse, kv, suffix_width)
    for tokens, prompt_kv in zip(token_lists, stored, strict=True):
        prefixes.add(tokens, prompt_kv)


def _continuation(
    model: LoadedModel,
    prefixes: PrefixStore,
    request: GenerationRequest,
    tokens: list[int],
    reused: tuple[int, PromptKV | None],
) -> tuple[int, PromptKV | None]:
    """How many positions after the conversation prefix (``reused``) come from the stored KV
    of the request's last message, and that KV: everything of the rendered conversation but
    its last token, prefilled alone on the stored prefix on first use and kept, so the same
    brief's next round (the same messages, another answer start) finds it, and a result never
    depends on whether it was stored. Only for a request that says it will come ``again``;
    (0, None) otherwise or when there is nothing worth keeping."""
    start, prefix_kv = reused
    if not start or not request.again or request.prompt is not None:
        return 0, None
    head = model.encode([model.render(request.messages)])[0][:-1]
    if len(head) - start < prefixes.MIN_REUSE or tokens[: len(head)] != head:
        return 0, None  # the answer start merges into the conversation's last token
    kv = prefixes.continuation(head)
    if kv is None:
        kv = prefill_alone(model, head, (start, prefix_kv))
        prefixes.keep_continuation(head, start, kv)
    return len(head) - start, kv


def _row_kvs(
    token_lists: list[list[int]],
    reuse: list[tuple[int, PromptKV | None]],
    kv: KVCache,
    suffix_width: int,
) -> list[PromptKV]:
    """Each row's prompt KV after a prefill (prefix part and suffix part, without padding)."""
    prefix_width = max(length for length, _ in reuse)
    total = prefix_width + suffix_width
    stored = []
    for row, (tokens, (length, _)) in enumerate(zip(token_lists, reuse, strict=True)):
        suffix = len(tokens) - length
        spans = [(prefix_width - length, prefix_width), (total - suffix, total)]
        stored.append(kv.prompt_kv(row, spans))
    return stored


def _conversation_prefix(model: LoadedModel, request: GenerationRequest) -> tuple[int, ...] | None:
    return None if request.prompt is not None else model.conversation_prefix(request.messages)


def shared_prefix(
    model: LoadedModel,
    prefixes: PrefixStore,
    prefix: tuple[int, ...] | None,
    tokens: Sequence[int],
) -> tuple[int, PromptKV | None]:
    """How many leading tokens of ``tokens`` come from the stored KV of the conversation
    ``prefix`` (LoadedModel.conversation_prefix; prefilled alone on first use), and that KV."""
    if prefix is None or not prefixes.MIN_REUSE <= len(prefix) < len(tokens):
        return 0, None
    if tuple(tokens[: len(prefix)]) != prefix:
        return 0, None
    kv = prefixes.shared(prefix)
    if kv is None:
        kv = prefill_alone(model, prefix)
        prefixes.keep_shared(prefix, kv)
    return len(prefix), kv


def prefill_alone(
    model: LoadedModel,
    tokens: Sequence[int],
    on: tuple[int, PromptKV | None] = (0, None),
) -> PromptKV:
    """The KV of ``tokens`` prefilled as one unpadded row: the same numbers every time. With
    ``on`` (how many leading positions have stored KV, and that KV) only the rest runs, on top
    of it, and only the rest's KV is returned."""
    start, stored = on if on[1] is not None else (0, None)
    kv, attention, positions, input_ids = prefill_inputs(model, [list(tokens)], [(start, stored)])
    model.forward(
        kv,
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=positions,
        logits_to_keep=1,
    )
    return kv.prompt_kv(0, [(start, len(tokens))])
