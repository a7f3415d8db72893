"""A loaded model, as the decode batch uses it: tokenize, run a forward pass, decode.

The runner builds one per load (or CPU fallback) and hands it to the batch, so the batch never
reaches into the runner.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from copygen.domain import ChatMessage, GenerationRequest
from copygen.engine.model.kv import KVCache
from copygen.engine.model.llama import FusedLlama
from copygen.engine.model.prefix_attention import PrefixAttention


class LoadedModel:
    """A transformers model and tokenizer on one device, with copygen's fused forward when it
    can run the model. ``forward_passes_total`` counts every forward call."""

    #: Conversation prefixes remembered (their rendering and tokens), cleared when full.
    PREFIX_MEMO = 256
    #: Avoided-token sets remembered (by words and characters), cleared when full.
    AVOID_MEMO = 256

    def __init__(
        self, model: Any, tokenizer: Any, device: torch.device, fused: FusedLlama | None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.fused = fused
        # transformers 5 renames ``past_key_values`` to ``cache``; older model classes keep it.
        parameters = inspect.signature(model.forward).parameters
        self.cache_kwarg = "cache" if "cache" in parameters else "past_key_values"
        self.vocab_size: int = model.config.vocab_size
        self.pad_id: int = tokenizer.pad_token_id or 0
        self.stop_ids = self._stop_ids()
        self.forward_passes_total = 0
        self._prefixes: dict[tuple[ChatMessage, ...], tuple[int, ...] | None] = {}
        self._avoided: dict[tuple[tuple[str, ...], str], tuple[int, ...]] = {}
        self._pieces: list[str] | None = None

    @property
    def forward_name(self) -> str:
        """Which forward pass runs the model: "transformers", "fused" (torch's matmuls),
        "fused+onednn" or "fused+kernel" (llama.choose_matmul)."""
        if self.fused is None:
            return "transformers"
        return "fused" if self.fused.matmul == "torch" else f"fused+{self.fused.matmul}"

    @property
    def chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The chat template when the tokenizer has one, else a plain completion prompt."""
        if self.chat_template:
            rendered = self.tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in messages],
                tokenize=False,
                add_generation_prompt=True,
            )
            return str(rendered)
        return "\n\n".join(m.content for m in messages) + "\n\n"

    def prompt_text(self, request: GenerationRequest) -> str:
        text = request.prompt if request.prompt is not None else self.render(request.messages)
        return text + request.prefix

    def conversation_prefix(self, messages: Sequence[ChatMessage]) -> tuple[int, ...] | None:
        """The tokens of a chat prompt's conversation before its last message (system prompt,
        one-shot examples): what many prompts share. None for a one-message conversation or a
        template that does not render the earlier turns as a prefix."""
        if len(messages) < 2 or not self.chat_template:
            return None
        head = tuple(messages[:-1])
        if head not in self._prefixes:
            if len(self._prefixes) >= self.PREFIX_MEMO:
                self._prefixes.clear()
            rendered = self.tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in head],
                tokenize=False,
                add_generation_prompt=False,
            )
            full = self.render(messages)
            text = str(rendered)
            self._prefixes[head] = tuple(self.encode([text])[0]) if full.startswith(text) else None
        return self._prefixes[head]

    def avoided_ids(self, request: GenerationRequest) -> tuple[int, ...]:
        """The token ids ``request`` must never sample: each avoided word as a whole token (as
        written, capitalised, with and without a leading space; a word the tokenizer splits is
        left alone, so no other word loses its first piece), and every token that holds an
        avoided character. Special tokens (the end of a turn among them) are never avoided."""
        key = (request.avoid_words, request.avoid_chars)
        if key == ((), ""):
            return ()
        if key not in self._avoided:
            if len(self._avoided) >= self.AVOID_MEMO:
                self._avoided.clear()
            self._avoided[key] = self._find_avoided(*key)
        return self._avoided[key]

    def _find_avoided(self, words: Sequence[str], chars: str) -> tuple[int, ...]:
        forms = [
            form
            for word in words
            for cased in dict.fromkeys((word, word[:1].upper() + word[1:]))
            for form in (cased, " " + cased)
        ]
        found = {ids[0] for ids in self.encode(forms) if len(ids) == 1} if forms else set()
        if chars:
            if self._pieces is None:  # each token's own text (a byte-level piece is not)
                size = len(self.tokenizer)
                self._pieces = [
                    str(p) for p in self.tokenizer.batch_decode([[i] for i in range(size)])
                ]
            found |= {i for i, piece in enumerate(self._pieces) if any(c in piece for c in chars)}
        special = {*self.stop_ids, *getattr(self.tokenizer, "all_special_ids", ())}
        return tuple(sorted(i for i in found - special if i < self.vocab_size))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        ids: list[list[int]] = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return ids

    def decode(self, tokens: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(tokens), skip_special_tokens=True))

    def forward(
        self,
        kv: KVCache,
        *,
        select: torch.Tensor | None = None,
        prefix: PrefixAttention | None = None,
        **inputs: Any,
    ) -> torch.Tensor:
        """Float logits of each row's last position; with ``select``, logits (in the model's
        dtype on the fused path) of those positions of the flattened [rows * new] input.
        ``prefix`` (the fused forward only): the rows' stored prefixes are not in ``kv``."""
        self.forward_passes_total += 1
        if self.fused is not None:
            fused = self.fused(
                kv,
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"],
                select=select,
                prefix=prefix,
            )
            return fused if select is not None else fused.float()
        if prefix is not None:
            raise ValueError("split prefix attention needs the fused forward")
        output = self.model(**inputs, **{self.cache_kwarg: kv.cache}, use_cache=True)
        logits: torch.Tensor = output.logits
        if select is not None:
            return logits.reshape(-1, logits.shape[-1])[select]
        return logits[:, -1, :].float()

    def _stop_ids(self) -> frozenset[int]:
        ids = self.model.generation_config.eos_token_id
        stop = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            stop.add(self.tokenizer.eos_token_id)
        return frozenset(stop)
