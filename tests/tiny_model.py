"""A tiny random-weight Llama model and word-level tokenizer, built from a config (no network),
for tests that need a real transformers model."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = [
    "the",
    "a",
    "sun",
    "power",
    "charge",
    "phone",
    "hike",
    "trail",
    "go",
    "now",
    "fast",
    "solar",
    "light",
    "day",
    "night",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def tiny_model(*, chat: bool) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """The model and tokenizer in memory (the same weights every time)."""
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, "<s>": 3}
    for word in WORDS + ["<system>", "<user>", "<assistant>"]:
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>"
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=3,
        # Large random weights so attention, not just the residual path, decides tokens:
        # a cache bug then changes the text.
        initializer_range=0.5,
    )
    return LlamaForCausalLM(config).eval(), tokenizer


def build_tiny_model(directory: Path, *, chat: bool) -> Path:
    model, tokenizer = tiny_model(chat=chat)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
