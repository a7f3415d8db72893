"""The brand-safety list: the default, an operator's own list, and turning it off."""

from __future__ import annotations

import pytest

from copygen.copywriting.safety import DEFAULT_BRAND_SAFETY_WORDS, brand_safety_words


def test_without_configuration_the_default_list_applies() -> None:
    words = brand_safety_words(None)
    assert words == DEFAULT_BRAND_SAFETY_WORDS
    assert {"risk-free", "guaranteed cure"} <= set(words)  # phrases, not only single words


def test_an_operators_comma_list_replaces_the_default_trimmed() -> None:
    assert brand_safety_words(" cheap , free gift,,  ") == ("cheap", "free gift")


@pytest.mark.parametrize("configured", ["", " ", ", ,"])
def test_an_empty_list_turns_the_check_off(configured: str) -> None:
    assert brand_safety_words(configured) == ()
