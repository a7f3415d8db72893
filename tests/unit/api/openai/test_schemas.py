"""The OpenAI-compatible request models: defaults as OpenAI's, stop given as text or a list,
the token budget's precedence, and fields copygen does not support refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from copygen.api.openai.schemas import MAX_STOP, ChatCompletionRequest, CompletionRequest

CHAT = {"messages": [{"role": "user", "content": "Say hi"}]}


def test_defaults_are_openais() -> None:
    request = ChatCompletionRequest.model_validate(CHAT)
    assert (request.temperature, request.top_p, request.n, request.stream) == (1.0, 1.0, 1, False)
    assert request.stops() == ()
    assert request.token_budget(256) == 256


@pytest.mark.parametrize(("stop", "stops"), [("\n", ("\n",)), (["END", "."], ("END", "."))])
def test_stop_is_one_string_or_a_list(stop: Any, stops: tuple[str, ...]) -> None:
    assert ChatCompletionRequest.model_validate({**CHAT, "stop": stop}).stops() == stops


@pytest.mark.parametrize("stop", [[""], ["x"] * (MAX_STOP + 1), ["x" * 65]])
def test_too_many_empty_or_long_stops_are_refused(stop: list[str]) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**CHAT, "stop": stop})


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    both = CompletionRequest.model_validate(
        {"prompt": "x", "max_tokens": 10, "max_completion_tokens": 20}
    )
    assert both.token_budget(256) == 20
    assert (
        CompletionRequest.model_validate({"prompt": "x", "max_tokens": 10}).token_budget(256) == 10
    )


@pytest.mark.parametrize(
    "extra",
    [{"frequency_penalty": 0.1}, {"temperature": float("nan")}, {"top_p": 0}, {"seed": -1}],
    ids=lambda extra: next(iter(extra)),
)
def test_what_copygen_does_not_do_is_refused_not_ignored(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**CHAT, **extra})
