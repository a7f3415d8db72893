"""Scoring (prompt, text) pairs on the tiny random Llama: the mean log-probability of the
text's tokens, the same batched and padded as computed one by one from a plain forward."""

from __future__ import annotations

import pytest
import torch

from copygen.domain import ChatMessage, ScoreRequest
from copygen.engine.model.loaded import LoadedModel
from copygen.engine.model.prefix import PrefixStore
from copygen.engine.model.scorer import CHUNK, score
from tests.tiny_model import WORDS, tiny_model

BRIEF = (ChatMessage("system", "solar power"), ChatMessage("user", "charge the phone"))


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    built, tokenizer = tiny_model(chat=True)
    return LoadedModel(built, tokenizer, torch.device("cpu"), None)


def _by_hand(model: LoadedModel, request: ScoreRequest) -> float:
    """The text tokens' mean log-probability from one unpadded forward over prompt + text."""
    prompt = model.encode([model.render(request.messages)])[0]
    text = model.encode([request.text])[0]
    ids = torch.tensor([prompt + text])
    with torch.no_grad():
        logits = model.model(input_ids=ids).logits[0].float().log_softmax(-1)
    picked = [logits[len(prompt) - 1 + i, token].item() for i, token in enumerate(text)]
    return sum(picked) / len(picked)


def test_a_texts_score_is_its_tokens_mean_log_probability(model: LoadedModel) -> None:
    request = ScoreRequest(BRIEF, "sun power now")
    [found] = score(model, [request])
    assert found == pytest.approx(_by_hand(model, request), abs=1e-4)
    assert found < 0


def test_padding_and_chunking_change_no_score(model: LoadedModel) -> None:
    requests = [
        ScoreRequest(BRIEF[: 1 + i % 2], " ".join(WORDS[: 1 + i % 7]))
        for i in range(CHUNK + 1)  # two chunks, rows of different lengths
    ]
    together = score(model, requests)
    alone = [score(model, [request])[0] for request in (requests[1], requests[-1])]
    assert [together[1], together[-1]] == pytest.approx(alone, abs=1e-4)
    assert len(together) == len(requests)


def test_an_empty_text_scores_zero(model: LoadedModel) -> None:
    assert score(model, [ScoreRequest(BRIEF, "")]) == [0.0]
    mixed = score(model, [ScoreRequest(BRIEF, ""), ScoreRequest(BRIEF, "sun")])
    assert mixed[0] == 0.0
    assert mixed[1] < 0


def test_a_prompt_is_prefilled_once_for_all_its_texts_on_its_stored_system_prompt(
    model: LoadedModel,
) -> None:
    store = PrefixStore(budget_tokens=0)
    brief = (ChatMessage("system", "solar power night light"), BRIEF[1])
    requests = [ScoreRequest(brief, " ".join(WORDS[i : i + 3])) for i in range(5)]
    passes = model.forward_passes_total
    found = score(model, requests, store)
    # the system prompt alone, the rest of the prompt once, then every text in one pass
    assert model.forward_passes_total - passes == 3
    assert len(store.shared_entries) == 1
    assert found == pytest.approx([_by_hand(model, r) for r in requests], abs=1e-4)
    again = score(model, requests, store)  # the system prompt's KV is reused now
    assert store.reused_tokens_total > 0
    assert again == pytest.approx(found, abs=1e-4)


def test_a_one_token_prompt_runs_whole(model: LoadedModel) -> None:
    built, tokenizer = tiny_model(chat=False)
    plain = LoadedModel(built, tokenizer, torch.device("cpu"), None)
    request = ScoreRequest((ChatMessage("user", ""),), "sun power")
    [found] = score(plain, [request])
    assert found == pytest.approx(_by_hand(plain, request), abs=1e-4)


def test_a_prompt_scored_again_runs_only_its_texts_from_the_kept_continuation(
    model: LoadedModel,
) -> None:
    store = PrefixStore(budget_tokens=0, continuation_budget_tokens=512)
    channel_only = (ChatMessage("system", "solar power night light"), ChatMessage("user", "sun"))
    requests = [ScoreRequest(channel_only, " ".join(WORDS[i : i + 2])) for i in range(4)]
    found = score(model, requests, store)
    assert len(store.continuations) == 1
    passes = model.forward_passes_total
    again = score(model, requests, store)
    assert model.forward_passes_total - passes == 1  # the texts alone
    assert again == found  # an unpadded row's KV: the same numbers stored or not
    assert found == pytest.approx([_by_hand(model, r) for r in requests], abs=1e-4)


def test_a_prompt_without_a_conversation_prefix_is_prefilled_once_for_all_its_texts(
    model: LoadedModel,
) -> None:
    alone = (ChatMessage("user", "charge the phone with solar power"),)  # one message: no prefix
    requests = [ScoreRequest(alone, " ".join(WORDS[i : i + 3])) for i in range(5)]
    passes = model.forward_passes_total
    found = score(model, requests, PrefixStore(budget_tokens=0))
    assert model.forward_passes_total - passes == 2  # the prompt once, then every text
    assert found == pytest.approx([_by_hand(model, r) for r in requests], abs=1e-4)
