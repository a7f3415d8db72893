from __future__ import annotations

import pytest

from copygen.copywriting.channels import (
    CHANNELS,
    count_chars,
    count_google_ads,
    count_sms,
    count_words,
    count_x_weighted,
)

REQUIRED = (
    "google_ads_headline",
    "google_ads_description",
    "email_subject",
    "x_post",
    "sms",
    "product_description",
    "meta_description",
)


@pytest.mark.parametrize("channel_id", REQUIRED)
def test_required_channels_exist_with_a_counting_rule(channel_id: str) -> None:
    channel = CHANNELS[channel_id]
    assert channel.id == channel_id
    assert channel.measure("Hello world").units > 0


@pytest.mark.parametrize(
    ("channel_id", "limit"),
    [("google_ads_headline", 30), ("google_ads_description", 90), ("x_post", 280), ("sms", 160)],
)
def test_published_limits(channel_id: str, limit: int) -> None:
    assert CHANNELS[channel_id].limit == limit
    assert CHANNELS[channel_id].kind == "hard"


def test_chars_counts_code_points_after_nfc() -> None:
    assert count_chars("cafe\u0301").units == 4  # e + combining accent → é


def test_google_ads_counts_wide_characters_twice() -> None:
    assert count_google_ads("Solar").units == 5
    assert count_google_ads("太陽光").units == 6
    assert count_google_ads("ｶﾀｶﾅ").units == 4  # half-width katakana count 1


def test_x_weighted_counts_urls_as_23_and_wide_as_2() -> None:
    assert count_x_weighted("hello").units == 5
    assert count_x_weighted("see https://example.com/a/very/long/path?x=1").units == 4 + 23
    assert count_x_weighted("see example.com now").units == 4 + 23 + 4
    assert count_x_weighted("日本").units == 4


def test_x_weighted_counts_an_emoji_sequence_as_2() -> None:
    assert count_x_weighted("🙂").units == 2
    assert count_x_weighted("👩‍👩‍👧").units == 2  # ZWJ family is one emoji
    assert count_x_weighted("👍🏽").units == 2  # skin-tone modifier


def test_sms_gsm7_extension_characters_count_twice() -> None:
    measure = count_sms("Save 10€ [today]")
    assert measure.units == 16 + 3
    assert measure.limit == 160


def test_sms_one_emoji_switches_the_message_to_ucs2() -> None:
    measure = count_sms("Sale today 🙂")
    assert measure.limit == 70
    assert measure.units == len("Sale today ") + 2  # the emoji is a surrogate pair


def test_sms_segments_are_reported() -> None:
    assert "2 segment" in count_sms("a" * 161).detail
    assert "1 segment" in count_sms("a" * 160).detail


def test_words() -> None:
    assert count_words("  one two\nthree ").units == 3


def test_max_chars_tightens_the_limit() -> None:
    headline = CHANNELS["google_ads_headline"]
    assert headline.measure("x", max_chars=20).limit == 20
    assert headline.measure("x", max_chars=50).limit == 30
    assert CHANNELS["product_description"].measure("two words", max_chars=100).limit == 100
    assert CHANNELS["product_description"].measure("two words").units == 2
