"""A loaded model as the decode batch uses it, on the tiny random Llama (tests/tiny_model.py):
prompts rendered with or without a chat template, the shared conversation prefix, stop ids,
and the forward pass's logits."""

from __future__ import annotations

import pytest
import torch

from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
from copygen.engine.model.kv import KVCache
from copygen.engine.model.llama import FusedLlama
from copygen.engine.model.loaded import LoadedModel
from copygen.engine.model.prefix_attention import PrefixAttention
from tests.tiny_model import tiny_model

SYSTEM = ChatMessage("system", "the sun power")
USER = ChatMessage("user", "charge phone now")


def _loaded(*, chat: bool = True, fused: bool = False) -> LoadedModel:
    model, tokenizer = tiny_model(chat=chat)
    return LoadedModel(model, tokenizer, torch.device("cpu"), FusedLlama(model) if fused else None)


def _request(
    *messages: ChatMessage, prompt: str | None = None, prefix: str = ""
) -> GenerationRequest:
    return GenerationRequest(messages, SamplingParams(), prompt=prompt, prefix=prefix)


def _inputs(model: LoadedModel, rows: list[list[int]]) -> dict[str, torch.Tensor]:
    ids = torch.tensor(rows)
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "position_ids": positions}


def test_a_chat_model_renders_its_template_and_a_plain_one_a_completion_prompt() -> None:
    chat, plain = _loaded(chat=True), _loaded(chat=False)
    assert chat.render([SYSTEM, USER]) == (
        "<system>the sun power</s><user>charge phone now</s><assistant>"
    )
    assert plain.render([SYSTEM, USER]) == "the sun power\n\ncharge phone now\n\n"


def test_a_raw_prompt_wins_over_messages_and_the_prefix_is_appended() -> None:
    model = _loaded(chat=False)
    assert model.prompt_text(_request(USER, prompt="go solar", prefix=" Sun")) == "go solar Sun"
    assert model.prompt_text(_request(USER, prefix="Sun")) == "charge phone now\n\nSun"


def test_the_conversation_before_the_last_message_is_the_shared_prefix() -> None:
    model = _loaded()
    prefix = model.conversation_prefix((SYSTEM, USER))
    full = model.encode([model.render([SYSTEM, USER])])[0]
    assert prefix is not None
    assert list(prefix) == full[: len(prefix)]
    assert 0 < len(prefix) < len(full)
    other = model.conversation_prefix((SYSTEM, ChatMessage("user", "hike trail")))
    assert other is prefix  # remembered: the same system prompt is rendered once


@pytest.mark.parametrize(
    ("chat", "messages"),
    [
        (True, (USER,)),  # one message: nothing before it
        (False, (SYSTEM, USER)),  # no chat template
    ],
)
def test_there_is_no_shared_prefix_without_an_earlier_turn_or_a_template(
    chat: bool, messages: tuple[ChatMessage, ...]
) -> None:
    assert _loaded(chat=chat).conversation_prefix(messages) is None


def test_the_prefix_memo_is_cleared_when_full() -> None:
    model = _loaded()
    model.PREFIX_MEMO = 1
    first = model.conversation_prefix((SYSTEM, USER))
    model.conversation_prefix((ChatMessage("system", "night light"), USER))
    assert model.conversation_prefix((SYSTEM, USER)) is not first


def test_stop_ids_pad_id_and_the_forward_in_use() -> None:
    model = _loaded()
    assert model.stop_ids == frozenset({2})  # </s>
    assert model.pad_id == 1
    assert model.forward_name == "transformers"
    assert _loaded(fused=True).forward_name in ("fused", "fused+onednn")


@pytest.mark.parametrize("fused", [False, True])
def test_forward_gives_each_rows_last_logits_or_the_selected_positions(fused: bool) -> None:
    model = _loaded(fused=fused)
    rows = [[5, 6, 7, 8], [9, 10, 11, 12]]
    last = model.forward(KVCache(), **_inputs(model, rows))
    assert last.shape == (2, model.vocab_size)
    assert last.dtype == torch.float32
    picked = model.forward(KVCache(), select=torch.tensor([3, 7, 1]), **_inputs(model, rows))
    torch.testing.assert_close(picked[:2].float(), last)
    assert model.forward_passes_total == 2


def test_split_prefix_attention_needs_the_fused_forward() -> None:
    model = _loaded()
    with pytest.raises(ValueError, match="fused"):
        model.forward(
            KVCache(), prefix=PrefixAttention.__new__(PrefixAttention), **_inputs(model, [[5]])
        )


def test_avoided_words_are_their_own_tokens_and_avoided_characters_every_token_holding_one() -> (
    None
):
    model = _loaded()
    ids = {word: model.encode([word])[0][0] for word in ("sun", "solar", "<system>", "</s>")}
    request = GenerationRequest((USER,), SamplingParams(), avoid_words=("sun", "sunny"),
                                avoid_chars="<")  # fmt: skip
    avoided = model.avoided_ids(request)
    assert ids["sun"] in avoided
    assert ids["solar"] not in avoided
    assert ids["<system>"] in avoided  # it holds "<"
    assert ids["</s>"] not in avoided  # the end of a turn is never avoided
    assert model.avoided_ids(request) is avoided  # remembered
    assert model.avoided_ids(_request(USER)) == ()
