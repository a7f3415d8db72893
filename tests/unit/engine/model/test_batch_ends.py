"""Where a row's text ends early (stop strings, the end of a one-line answer), on a toy
tokenizer that has a line-break token (no model: ``DecodeBatch._take`` only decodes)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
from copygen.engine.model.batch import DecodeBatch
from copygen.engine.model.detokenize import Detokenizer
from copygen.engine.model.live import LiveRow
from copygen.engine.protocols import RowSpec

PIECES = ["Go", " solar", "\n", "Headline", ":", " now", "</s>"]
EOS = 6


def decode(tokens: Sequence[int]) -> str:
    return "".join(PIECES[t] for t in tokens if t != EOS)


def batch() -> DecodeBatch:
    toy = DecodeBatch.__new__(DecodeBatch)
    toy.model = SimpleNamespace(stop_ids=frozenset({EOS}), decode=decode)  # type: ignore[assignment]
    return toy


def row(
    *,
    single_line: bool,
    stop: tuple[str, ...] = (),
    prefix: str = "",
    max_chars: int | None = None,
) -> LiveRow:
    request = GenerationRequest(
        messages=(ChatMessage("user", "x"),),
        sampling=SamplingParams(max_new_tokens=20),
        prefix=prefix,
        stop=stop,
        single_line=single_line,
        max_chars=max_chars,
    )
    return LiveRow(RowSpec((1, 0, 0), request, 0), 3, Detokenizer(decode, prefix))


def feed(
    toy: DecodeBatch, live: LiveRow, steps: Sequence[Sequence[int]]
) -> list[tuple[str, str | None, int]]:
    events = []
    for tokens in steps:
        event, _ = toy._take(live, list(tokens))
        events.append((event.text or event.delta, event.finish_reason, event.completion_tokens))
        if event.finish_reason:
            break
    return events


def test_a_one_line_answer_ends_with_its_first_line_of_text() -> None:
    events = feed(batch(), row(single_line=True), [[3], [4], [2], [0], [1], [2], [5]])
    # "Headline:" labels the line after it; the copy checks drop it.
    assert events[-1] == ("Headline:\nGo solar", "stop", 6)
    assert events[-2][1] is None


def test_several_tokens_at_once_count_only_up_to_the_line_end() -> None:
    [event] = feed(batch(), row(single_line=True), [[0, 1, 2, 5, 2]])
    assert event == ("Go solar", "stop", 3)


def test_without_single_line_the_text_goes_on() -> None:
    events = feed(batch(), row(single_line=False), [[0], [2], [1], [EOS]])
    assert events[-1] == ("Go\n solar", "stop", 4)


def test_the_earlier_of_a_stop_string_and_the_line_end_wins() -> None:
    [event] = feed(batch(), row(single_line=True, stop=(" now",)), [[0, 5, 1, 2]])
    assert event == ("Go", "stop", 2)
    [event] = feed(batch(), row(single_line=True, stop=(" now",)), [[0, 1, 2, 5]])
    assert event == ("Go solar", "stop", 3)


def test_a_row_past_its_character_cap_ends_there_as_length() -> None:
    # "Go solar" is 8 characters: within a cap of 8 the row goes on, past it the row ends.
    events = feed(batch(), row(single_line=False, max_chars=8), [[0], [1], [5], [1]])
    assert [finish for _, finish, _ in events] == [None, None, "length"]
    assert events[-1] == ("Go solar now", "length", 3)


def test_the_character_cap_counts_the_primed_prefix() -> None:
    [event] = feed(batch(), row(single_line=False, prefix="Headline", max_chars=10), [[0]])
    assert event == ("HeadlineGo", None, 1)  # 10 characters: not past the cap
    events = feed(batch(), row(single_line=False, prefix="Headline", max_chars=10), [[0], [1]])
    assert events[-1][1] == "length"


def test_a_reported_log_probability_is_finite_whatever_the_logits() -> None:
    import math
    from dataclasses import replace

    import pytest
    import torch

    from copygen.engine.model.batch import LOGPROB_FLOOR

    toy = batch()
    plain = row(single_line=False)
    asking = replace(plain.spec.request, logprobs=True)
    toy.rows = [
        LiveRow(RowSpec((1, 0, i), asking, 0), 3, Detokenizer(decode, "")) for i in range(3)
    ] + [plain]
    toy.logits = torch.tensor(
        [
            [0.0, 0.0, float("-inf"), 0.0],  # token 2 cannot be drawn: probability 0
            [float("nan")] * 4,  # a broken row
            [0.0, 0.0, 0.0, 0.0],  # four tokens alike
            [0.0, 0.0, 0.0, 0.0],  # does not ask
        ]
    )
    toy._note_logprobs(torch.tensor([2, 1, 3, 0]))
    assert [r.logprobs for r in toy.rows[:2]] == [[LOGPROB_FLOOR], [LOGPROB_FLOOR]]
    assert toy.rows[2].logprobs == pytest.approx([math.log(0.25)])
    assert toy.rows[3].logprobs == []
