"""Draft masking (security review #12): what the banned and brand-safety lists catch never
reaches a streamed draft, however the model's deltas cut the words; other text is sent as it
comes, a word being written held until it ends."""

from __future__ import annotations

import pytest

from copygen.copywriting.safety import DEFAULT_BRAND_SAFETY_WORDS
from copygen.service.drafts import MASK, DraftMasker, banned_phrases

PHRASES = banned_phrases((*DEFAULT_BRAND_SAFETY_WORDS, "cheap"))
TEXT = "Totally shit deal, a miracle cure and risk-free! Cheapest shell, hello miracle worker"
MASKED = "Totally ••• deal, a ••• and •••! ••• shell, hello miracle worker"


def _stream(deltas: list[str]) -> list[str]:
    masker = DraftMasker(PHRASES)
    sent = [masker.feed(delta) for delta in deltas]
    return [*sent, masker.feed("", final=True)]


def test_a_banned_word_split_across_deltas_is_masked() -> None:
    sent = _stream(["Totally ", "sh", "it", " deal"])
    assert sent == ["Totally ", "", "", "••• ", "deal"]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, len(TEXT)])
def test_any_cut_of_the_text_sends_the_same_masked_text(size: int) -> None:
    deltas = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    sent = _stream(deltas)
    assert "".join(sent) == MASKED
    for banned in ("shit", "miracle cure", "risk", "free", "Cheap"):
        assert all(banned not in "".join(sent[: n + 1]) for n in range(len(sent)))


def test_text_is_sent_as_soon_as_nothing_banned_can_begin_in_it() -> None:
    masker = DraftMasker(PHRASES)
    assert masker.feed("Bright solar lamp") == "Bright solar "  # "lamp" may go on
    assert masker.feed(" for a miracle") == "lamp for a "  # "miracle cure" may follow
    assert masker.feed(" worker.") == "miracle worker."
    assert masker.feed("", final=True) == ""


def test_a_row_that_ends_mid_phrase_sends_what_it_held() -> None:
    masker = DraftMasker(PHRASES)
    assert masker.feed("Get rich") == ""
    assert masker.feed("", final=True) == "Get rich"
    assert DraftMasker(PHRASES).feed("get rich quick", final=True) == MASK
