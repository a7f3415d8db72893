"""Property tests for every counting rule."""

from __future__ import annotations

import string
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from copygen.copywriting.channels import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    X_URL_WEIGHT,
    count_chars,
    count_google_ads,
    count_sms,
    count_words,
    count_x_weighted,
)

ascii_text = st.text(alphabet=string.ascii_letters + " ", max_size=80)
cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
emoji = st.sampled_from(["🙂", "🚀", "👍🏽", "👩‍👩‍👧", "❤️", "🇫🇷", "☀️"])
gsm_text = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=400)


@given(st.text(max_size=200))
def test_chars_is_nfc_code_points(text: str) -> None:
    assert count_chars(text).units == len(unicodedata.normalize("NFC", text))


@given(ascii_text, st.lists(cjk, max_size=10))
def test_google_ads_counts_cjk_twice(text: str, wide: list[str]) -> None:
    assert count_google_ads(text).units == len(text)
    assert count_google_ads(text + "".join(wide)).units == len(text) + 2 * len(wide)


@given(st.text(max_size=100))
def test_google_ads_is_between_one_and_two_per_char(text: str) -> None:
    n = len(unicodedata.normalize("NFC", text))
    assert n <= count_google_ads(text).units <= 2 * n


@given(ascii_text, st.lists(emoji, max_size=5))
def test_x_counts_each_emoji_sequence_as_two(text: str, emojis: list[str]) -> None:
    # A space between emojis keeps flags and ZWJ sequences from merging.
    suffix = "".join(" " + e for e in emojis)
    assert count_x_weighted(text + suffix).units == len(text) + 3 * len(emojis)


@given(ascii_text, st.lists(cjk, max_size=10))
def test_x_counts_cjk_twice(text: str, wide: list[str]) -> None:
    assert count_x_weighted(text + "".join(wide)).units == len(text) + 2 * len(wide)


@given(
    st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=10),
    st.text(alphabet=string.ascii_letters + string.digits + "/-_?=&", max_size=60),
)
def test_x_counts_every_url_as_23(host: str, path: str) -> None:
    text = f"Go https://{host}.example/{path} now"
    assert count_x_weighted(text).units == len("Go ") + X_URL_WEIGHT + len(" now")


@given(gsm_text)
def test_sms_gsm7_counts_extension_characters_twice(text: str) -> None:
    measure = count_sms(text)
    extension = sum(1 for ch in text if ch in GSM7_EXTENSION)
    assert measure.units == len(text) + extension
    assert measure.limit == 160


@given(
    gsm_text, st.characters(codec="utf-16", exclude_characters=sorted(GSM7_BASIC | GSM7_EXTENSION))
)
def test_sms_one_non_gsm_character_switches_to_ucs2(text: str, other: str) -> None:
    measure = count_sms(text + other)
    assert measure.limit == 70
    assert measure.units == len((text + other).encode("utf-16-le")) // 2


@given(st.text(max_size=1000))
def test_sms_segments_grow_with_length(text: str) -> None:
    measure = count_sms(text)
    segments = int(measure.detail.split(", ")[1].split(" ")[0])
    single = measure.limit or 0
    assert (segments == 1) == (measure.units <= single)


@given(st.lists(st.text(alphabet=string.ascii_letters, min_size=1), max_size=30))
def test_words(words: list[str]) -> None:
    assert count_words("  ".join(words)).units == len(words)
