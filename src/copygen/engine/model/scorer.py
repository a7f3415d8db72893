"""How likely the model finds a text after a prompt: the mean log-probability of the text's
tokens, for many (prompt, text) pairs. The copywriter ranks candidates by how much the brief
raises it (relevance).

A brief's candidates share their prompts, so each distinct prompt is prefilled once (on top
of its stored conversation prefix, as generation does) and every text then runs on the
prompt's KV: a pair costs its text's tokens, not its prompt's (~150 tokens of a copy brief's
scoring prompt against ~15 of a headline).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from copygen.domain import ChatMessage, ScoreRequest
from copygen.engine.model.loaded import LoadedModel
from copygen.engine.model.prefill import prefill_alone, prefill_inputs, shared_prefix
from copygen.engine.model.prefix import PrefixStore, PromptKV

#: Pairs per forward pass (bounds the memory of the prompts' KV copied into the batch).
CHUNK = 32


def score(
    model: LoadedModel, requests: Sequence[ScoreRequest], prefixes: PrefixStore | None = None
) -> list[float]:
    """Mean log-probability per token of each text given its messages (0.0 for no text).
    ``prefixes`` holds the conversation prefixes' KV (system prompts) for reuse, and keeps
    each scored prompt's KV after it as a continuation (within its budget): the same channel's
    channel-only prompt, scored for every brief, then costs nothing after the first."""
    store = prefixes if prefixes is not None else PrefixStore(budget_tokens=0)
    rendered = [model.render(r.messages) for r in requests]
    distinct = list(dict.fromkeys(rendered))
    first = {text: r.messages for r, text in zip(requests, rendered, strict=True)}
    prompt_tokens = dict(zip(distinct, model.encode(distinct), strict=True))
    # Each prompt's KV up to its last token, which runs with the text to predict its first.
    held = {t: _held(model, store, first[t], prompt_tokens[t]) for t in distinct}
    texts = model.encode([r.text for r in requests])
    pairs = [
        (prompt_tokens[p], held[p], text) for p, text in zip(rendered, texts, strict=True) if text
    ]
    found: list[float] = []
    for start in range(0, len(pairs), CHUNK):
        found += _score_chunk(model, pairs[start : start + CHUNK])
    scores = iter(found)
    return [next(scores) if text else 0.0 for text in texts]


#: Where a prompt's stored KV comes from: (positions from the stored conversation prefix, its
#: KV), then (positions after it, their KV); (0, None) for a part that runs with the text.
Held = tuple[tuple[int, PromptKV | None], tuple[int, PromptKV | None]]


def _held(
    model: LoadedModel, store: PrefixStore, messages: Sequence[ChatMessage], tokens: list[int]
) -> Held:
    """The KV of ``tokens`` but their last: the conversation prefix's (stored), and the rest's
    prefilled alone on it (an unpadded row: the same numbers whether stored or not) and kept
    as a continuation. A prompt with no conversation prefix (one message, or a model without
    a chat template) is prefilled once here, whole, for all its texts, and not kept."""
    head = tokens[:-1]
    if not head:
        return (0, None), (0, None)
    start, prefix_kv = shared_prefix(model, store, model.conversation_prefix(messages), head)
    if prefix_kv is None:
        return (len(head), prefill_alone(model, head)), (0, None)
    if len(head) <= start:
        return (start, prefix_kv), (0, None)
    kv = store.continuation(head)
    if kv is None:
        kv = prefill_alone(model, head, (start, prefix_kv))
        store.keep_continuation(head, start, kv)
    return (start, prefix_kv), (len(head) - start, kv)


def _score_chunk(
    model: LoadedModel, pairs: Sequence[tuple[list[int], Held, list[int]]]
) -> list[float]:
    """Mean log-probabilities of texts run on their prompts' stored KV (each text non-empty;
    what is not stored runs with the text)."""
    rows = [prompt + text for prompt, _, text in pairs]
    reuse = [held[0] for _, held, _ in pairs]
    follow = [held[1] for _, held, _ in pairs]
    kv, attention, positions, input_ids = prefill_inputs(model, rows, reuse, follow)
    width = input_ids.shape[1]  # suffixes (the prompt's last token + the text), right-aligned
    select: list[int] = []  # flattened positions whose logits predict a text token
    targets: list[int] = []
    spans: list[tuple[int, int]] = []
    for index, (_, _, text) in enumerate(pairs):
        first = index * width + width - len(text) - 1
        spans.append((len(select), len(select) + len(text)))
        select += range(first, first + len(text))
        targets += text
    logits = model.forward(
        kv,
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=positions,
        select=torch.tensor(select, device=model.device),
    )
    logprobs = logits.float().log_softmax(dim=-1)
    device = logprobs.device
    picked = logprobs[torch.arange(len(targets)), torch.tensor(targets, device=device)].tolist()
    return [sum(picked[begin:end]) / (end - begin) for begin, end in spans]
