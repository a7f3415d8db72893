"""Joining rows' prefill on the tiny random Llama: each distinct prompt runs once and fans out
to its rows, a stored conversation prefix is reused exactly (the logits match a plain forward
of the whole prompt, hit or miss), and the opportunistic store remembers what it prefilled."""

from __future__ import annotations

import pytest
import torch

from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
from copygen.engine.model.kv import KVCache
from copygen.engine.model.llama import FusedLlama
from copygen.engine.model.loaded import LoadedModel
from copygen.engine.model.prefill import Prefilled, prefill_alone, shared_prefix
from copygen.engine.model.prefix import PrefixStore
from copygen.engine.protocols import RowSpec
from tests.tiny_model import tiny_model

SYSTEM = ChatMessage("system", "the sun power")


def _model() -> LoadedModel:
    built, tokenizer = tiny_model(chat=True)
    return LoadedModel(built, tokenizer, torch.device("cpu"), None)


def _request(user: str) -> GenerationRequest:
    return GenerationRequest((SYSTEM, ChatMessage("user", user)), SamplingParams())


def _specs(*requests: GenerationRequest) -> list[RowSpec]:
    return [RowSpec((1, i, 0), request, i) for i, request in enumerate(requests)]


def _plain_logits(model: LoadedModel, request: GenerationRequest) -> torch.Tensor:
    """The last position's logits of the whole prompt, one unpadded row, nothing reused."""
    ids = torch.tensor([model.encode([model.prompt_text(request)])[0]])
    return model.forward(
        KVCache(),
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        position_ids=torch.arange(ids.shape[1])[None, :],
    )[0]


def test_a_reused_conversation_prefix_gives_the_logits_of_a_plain_prefill() -> None:
    model, store = _model(), PrefixStore(budget_tokens=0)
    charge, hike = _request("charge phone now"), _request("hike trail at night")
    first = Prefilled.of(model, store, None, _specs(charge))  # miss: the prefix runs alone
    assert len(store.shared_entries) == 1
    second = Prefilled.of(model, store, None, _specs(hike, charge))  # hit for both
    assert store.reused_tokens_total == 2 * len(next(iter(store.shared_entries)))
    torch.testing.assert_close(first.logits[0], _plain_logits(model, charge))
    torch.testing.assert_close(second.logits[1], first.logits[0])
    torch.testing.assert_close(second.logits[0], _plain_logits(model, hike))


def test_identical_prompts_run_once_and_fan_out_to_their_rows() -> None:
    model = _model()
    charge = _request("charge phone now")
    specs = [RowSpec((1, 0, row), charge, row) for row in range(3)]
    passes = model.forward_passes_total
    prefilled = Prefilled.of(model, PrefixStore(budget_tokens=0), None, specs)
    assert model.forward_passes_total - passes == 2  # the prefix alone, then one row
    assert prefilled.logits.shape[0] == prefilled.attention.shape[0] == 3
    torch.testing.assert_close(prefilled.logits[2], prefilled.logits[0])
    prompt = model.encode([model.prompt_text(charge)])[0]
    assert [row.prompt_tokens for row in prefilled.rows] == [len(prompt)] * 3
    assert prefilled.seen[0, prompt].all()  # the repetition penalty sees the prompt
    assert int(prefilled.seen[0].sum()) == len(set(prompt))


def test_the_opportunistic_store_keeps_prompts_and_reuses_their_common_prefix() -> None:
    model, store = _model(), PrefixStore(budget_tokens=1000)
    long_ = _request("charge phone now fast")
    Prefilled.of(model, store, None, _specs(long_))
    assert list(store.entries) == [tuple(model.encode([model.prompt_text(long_)])[0])]
    shorter = _request("charge phone now day")
    prefilled = Prefilled.of(model, store, None, _specs(shorter))
    assert store.reused_tokens_total > 0
    torch.testing.assert_close(prefilled.logits[0], _plain_logits(model, shorter))


def test_a_prompt_without_its_prefix_tokens_reuses_nothing() -> None:
    model, store = _model(), PrefixStore(budget_tokens=0)
    charge = _request("charge phone now")
    tokens = model.encode([model.prompt_text(charge)])[0]
    prefix = model.conversation_prefix(charge.messages)
    assert shared_prefix(model, store, prefix, [9, *tokens[1:]]) == (0, None)
    assert shared_prefix(model, store, None, tokens) == (0, None)
    raw = GenerationRequest(charge.messages, SamplingParams(), prompt="the sun at night")
    Prefilled.of(model, store, None, _specs(raw))  # a raw prompt has no conversation prefix
    assert not store.shared_entries


@pytest.mark.parametrize("length", [1, 5])
def test_prefill_alone_keeps_every_position_of_every_layer(length: int) -> None:
    model = _model()
    kv = prefill_alone(model, list(range(4, 4 + length)))
    assert len(kv) == model.model.config.num_hidden_layers
    keys, values = kv[0]
    assert keys.shape[0] == 1
    assert keys.shape[2] == values.shape[2] == length


def _primed(user: str, start: str, *, again: bool = True) -> GenerationRequest:
    return GenerationRequest(
        (SYSTEM, ChatMessage("user", user)), SamplingParams(), prefix=start, again=again
    )


@pytest.mark.parametrize("split", [False, True])
def test_a_prompts_stored_continuation_is_reused_by_the_next_round_exactly(split: bool) -> None:
    """A brief's next round (same messages, another answer start) prefills only its start on
    the stored KV of the brief's message (prefilled alone on the conversation prefix), alone
    or padded next to other prompts."""
    built, tokenizer = tiny_model(chat=True)
    model = LoadedModel(built, tokenizer, torch.device("cpu"), FusedLlama(built) if split else None)
    store = PrefixStore(budget_tokens=0, continuation_budget_tokens=100)
    brief = "charge phone now fast at night"
    Prefilled.of(model, store, None, _specs(_primed(brief, " sun")), split=split)
    assert len(store.continuations) == 1
    reused = store.reused_tokens_total
    again = _primed(brief, " phone")
    other = _request("hike")
    prefilled = Prefilled.of(model, store, None, _specs(other, again), split=split)
    assert store.reused_tokens_total - reused >= len(brief.split()) - 1  # the message is back
    torch.testing.assert_close(prefilled.logits[1], _plain_logits(model, again))
    torch.testing.assert_close(prefilled.logits[0], _plain_logits(model, other))
    # Rows decode on: the joined KV has the prefix's, the continuation's and the new columns.
    assert prefilled.kv.layers[0].keys.shape[2] == prefilled.attention.shape[1]


def test_continuations_are_kept_only_with_a_budget_for_a_prompt_that_comes_again() -> None:
    model, store = _model(), PrefixStore(budget_tokens=0)
    Prefilled.of(model, store, None, _specs(_primed("charge phone now fast", " sun")))
    assert not store.continuations
    store = PrefixStore(budget_tokens=0, continuation_budget_tokens=100)
    once = _primed("charge phone now fast", " sun", again=False)  # a chat request, say
    Prefilled.of(model, store, None, _specs(once))
    assert not store.continuations


def test_a_round_writes_the_same_numbers_whether_its_message_was_stored_or_not() -> None:
    model = _model()
    request = _primed("charge phone now fast at night", " sun")
    warm = PrefixStore(budget_tokens=0, continuation_budget_tokens=100)
    Prefilled.of(model, warm, None, _specs(request))  # stores the message
    hit = Prefilled.of(model, warm, None, _specs(request))
    cold = PrefixStore(budget_tokens=0, continuation_budget_tokens=100)
    miss = Prefilled.of(model, cold, None, _specs(request))
    assert torch.equal(hit.logits, miss.logits)
