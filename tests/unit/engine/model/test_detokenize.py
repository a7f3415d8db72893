"""The incremental detokenizer on toy tokenizers (no torch, no model)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from copygen.engine.model.detokenize import Detokenizer, line_end

WORDS = ["sun", "power", "go", "now", "a", "b"]


def words(tokens: Sequence[int]) -> str:
    """A word-level tokenizer: tokens joined by spaces."""
    return " ".join(WORDS[t] for t in tokens)


#: A byte-level tokenizer: each token is one byte of UTF-8 ("é" and "🌞" span tokens).
BYTES = list("héllo 🌞!".encode())


def utf8(tokens: Sequence[int]) -> str:
    return bytes(BYTES[t] for t in tokens).decode("utf-8", errors="replace")


def test_deltas_add_up_to_the_whole_decode() -> None:
    detok = Detokenizer(words)
    deltas = [detok.push([t]) for t in (0, 1, 2, 3)]
    assert deltas == ["sun", " power", " go", " now"]
    assert detok.text == words([0, 1, 2, 3])


def test_a_split_character_waits_for_its_last_byte() -> None:
    detok = Detokenizer(utf8, prefix="Say: ")
    pieces = [detok.push([i]) for i in range(len(BYTES))]
    assert "\ufffd" not in "".join(pieces)
    assert detok.text == "Say: héllo 🌞!"
    assert pieces[1] == ""  # the first byte of "é"
    assert pieces[2] == "é"


def test_finish_gives_an_incomplete_character_too() -> None:
    detok = Detokenizer(utf8)
    detok.push([0])
    detok.push([1])  # half of "é"
    assert detok.text == "h"
    assert detok.finish() == "\ufffd"


@given(st.lists(st.integers(0, len(BYTES) - 1), max_size=24), st.integers(1, 4))
def test_any_chunking_gives_the_same_text(tokens: list[int], chunk: int) -> None:
    detok = Detokenizer(utf8)
    for start in range(0, len(tokens), chunk):
        detok.push(tokens[start : start + chunk])
    detok.finish()
    assert detok.text == utf8(tokens)


def test_stops_are_found_where_the_new_text_could_complete_them() -> None:
    detok = Detokenizer(words, prefix="go ")
    detok.push([0, 1])  # "go sun power"
    new = len(detok.push([2]))  # " go"
    assert detok.find_stops([" go"], new) == [(" go", 12)]
    assert detok.find_stops(["go "], new) == []  # only in the prefix
    assert detok.find_stops(["sun", "zzz"], new) == []  # wholly in older text: seen before


def test_several_stops_cut_the_text_one_after_another() -> None:
    detok = Detokenizer(words)
    new = len(detok.push([0, 1, 2, 3]))  # "sun power go now"
    assert detok.find_stops([" now", " power"], new) == [(" now", 12), (" power", 3)]
    assert detok.find_stops([" power", " now"], new) == [(" power", 3)]


def test_a_line_of_text_ends_at_its_line_break() -> None:
    assert line_end("Go solar\nmore") == 8
    assert line_end("\n\nGo solar\nmore") == 10  # blank lines are not a line of text
    assert line_end("Headline:\nGo solar\n") == 18  # a label introduces the next line
    assert line_end("**\n1.\nGo\n") == 8  # decoration or numbering alone is not text
    assert line_end("**Subject -**\nGo\n") == 16  # nor a label in markdown
    assert line_end("Go solar") is None
    assert line_end("Go solar:\n") is None
    assert line_end("Go\nsolar\n", since=3) == 8  # only breaks that arrived since
    assert line_end("Solar\n", floor=6) is None  # the primed prefix is not searched


def test_the_detokenizer_finds_a_line_end_in_its_new_text() -> None:
    lines = ["Go", " solar", "\n", "Headline", ":"]
    detok = Detokenizer(lambda tokens: "".join(lines[t] for t in tokens), prefix="")
    detok.push([3, 4])
    assert detok.find_line_end(len(detok.push([2]))) is None  # "Headline:\n"
    detok.push([0, 1])
    assert detok.find_line_end(len(detok.push([2]))) == len("Headline:\nGo solar")
