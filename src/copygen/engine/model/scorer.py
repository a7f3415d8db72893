"""How likely the model finds a text after a prompt: the mean log-probability of the text's
tokens, for many (prompt, text) pairs in one batched forward pass without a KV cache to keep.
The copywriter ranks candidates by how much the brief raises it (relevance)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from copygen.domain import ScoreRequest
from copygen.engine.model.kv import KVCache
from copygen.engine.model.loaded import LoadedModel

#: Pairs per forward pass (bounds the activation memory of a long batch).
CHUNK = 16


def score(model: LoadedModel, requests: Sequence[ScoreRequest]) -> list[float]:
    """Mean log-probability per token of each text given its messages (0.0 for no text)."""
    results: list[float] = []
    for start in range(0, len(requests), CHUNK):
        results += _score_chunk(model, requests[start : start + CHUNK])
    return results


def _score_chunk(model: LoadedModel, requests: Sequence[ScoreRequest]) -> list[float]:
    prompts = model.encode([model.render(r.messages) for r in requests])
    texts = model.encode([r.text for r in requests])
    rows = [p + t for p, t in zip(prompts, texts, strict=True)]
    width = max(len(row) for row in rows)
    device = model.device
    input_ids = torch.full((len(rows), width), model.pad_id, dtype=torch.long)
    attention = torch.zeros(len(rows), width, dtype=torch.long)
    select: list[int] = []  # flattened positions whose logits predict a text token
    targets: list[int] = []
    spans: list[tuple[int, int]] = []
    for index, (prompt, text, row) in enumerate(zip(prompts, texts, rows, strict=True)):
        start = width - len(row)
        input_ids[index, start:] = torch.tensor(row)
        attention[index, start:] = 1
        first = index * width + start + len(prompt) - 1
        spans.append((len(select), len(select) + len(text)))
        select += range(first, first + len(text))
        targets += text
    positions = (attention.cumsum(dim=-1) - 1).clamp(min=0)
    if not select:
        return [0.0] * len(requests)
    logits = model.forward(
        KVCache(),
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=positions.to(device),
        select=torch.tensor(select, device=device),
    )
    logprobs = logits.float().log_softmax(dim=-1)
    picked = logprobs[torch.arange(len(targets)), torch.tensor(targets, device=device)].tolist()
    return [sum(picked[begin:end]) / (end - begin) if end > begin else 0.0 for begin, end in spans]
