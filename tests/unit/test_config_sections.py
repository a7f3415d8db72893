"""The settings' sections: every variable in exactly one, under its flat COPYGEN_* name."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from copygen.config import SECTIONS, Settings
from copygen.config_sections import BatchingSection, ModelSection, describe_sections


def test_every_setting_belongs_to_exactly_one_section() -> None:
    owners = Counter(name for section in SECTIONS for name in section.model_fields)
    assert set(owners) == set(Settings.model_fields)
    assert [name for name, count in owners.items() if count > 1] == []


def test_a_variable_keeps_its_flat_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPYGEN_MAX_QUEUE", "7")
    monkeypatch.setenv("COPYGEN_SPECULATIVE_TOKENS", "2")
    settings = Settings()
    assert settings.max_queue == 7
    assert settings.section(BatchingSection).max_queue == 7
    assert settings.section(ModelSection).speculative_tokens == 2


def test_a_section_is_validated_like_the_settings() -> None:
    with pytest.raises(ValidationError, match="max_batch_size"):
        Settings(max_batch_size=0)


def test_the_listing_names_every_variable_under_its_section() -> None:
    listing = describe_sections()
    for name in Settings.model_fields:
        assert f"COPYGEN_{name.upper()}=" in listing
    assert listing.index("[batching]") < listing.index("COPYGEN_MAX_QUEUE=")
