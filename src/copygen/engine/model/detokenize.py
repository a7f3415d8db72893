"""Token ids → text, incrementally, as TGI's ``decode_token`` and vLLM's detokenizer do.

Decoding a row's whole token list at every step costs O(n) per step, O(n²) per row. Here each
step decodes only a short window: the tokens from ``prefix_offset`` (a few tokens of context,
so a tokenizer that merges or spaces tokens by their neighbours decodes them as it would in
the whole text) up to the end. The text the window adds beyond what its first part decoded to
is the new text, unless it ends in an incomplete character (``\\ufffd``: a multi-byte
character split over tokens), which waits for the next token.

Worked example with a tokenizer that joins words by spaces: tokens ``[a]`` give "a"; then
``[a, b]`` decode to "a b" of which "a" was read, so " b" is new; the window then starts at
``b``. Stop strings are found in the new text and the few characters before it, never by
searching the whole text again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: ``decode(token ids)`` → text (special tokens skipped).
Decode = Callable[[Sequence[int]], str]


class Detokenizer:
    """One row's text so far: ``prefix`` (the primed start of the answer) and the decoded
    tokens, complete characters only until ``finish``."""

    __slots__ = ("_decode", "prefix", "text", "tokens", "_prefix_offset", "_read_offset")

    def __init__(self, decode: Decode, prefix: str = "") -> None:
        self._decode = decode
        self.prefix = prefix
        self.text = prefix
        self.tokens: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0

    def push(self, tokens: Sequence[int]) -> str:
        """Add tokens; the text they complete (may be empty)."""
        self.tokens += tokens
        return self._advance(final=False)

    def finish(self) -> str:
        """The rest of the text, even an incomplete last character."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        tokens = self.tokens
        if self._read_offset == len(tokens):
            return ""
        read = self._decode(tokens[self._prefix_offset : self._read_offset])
        window = self._decode(tokens[self._prefix_offset :])
        if len(window) <= len(read) or (window.endswith("\ufffd") and not final):
            return ""
        new = window[len(read) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(tokens)
        self.text += new
        return new

    def find_line_end(self, new_chars: int) -> int | None:
        """Where the first line of text ends (see ``line_end``), if the last ``new_chars``
        characters completed it."""
        return line_end(self.text, len(self.prefix), max(0, len(self.text) - new_chars))

    def find_stops(self, stops: Sequence[str], new_chars: int) -> list[tuple[str, int]]:
        """Each of ``stops`` found in ``text`` after the prefix, with where it starts, in the
        order of ``stops``; each is looked for in the text as cut by those found before it,
        and only where the last ``new_chars`` characters could have completed it."""
        text, floor = self.text, len(self.prefix)
        end, found = len(text), []
        for stop in stops:
            start = max(floor, len(text) - new_chars - len(stop) + 1)
            cut = text.find(stop, start, end)
            if cut >= 0:
                found.append((stop, cut))
                end = cut
        return found


#: A line that ends in one of these (markdown emphasis aside) labels the line after it.
_LABEL_ENDS = (":", "-", "–")


def line_end(text: str, floor: int = 0, since: int = 0) -> int | None:
    """The first line break at or after ``since`` (and after ``floor``, where the generated
    text starts) that ends a line of text: one with a letter that does not end in ":", "-"
    or "–" (markdown emphasis aside), which would label the next line ("Headline:",
    "**Subject -**"). None when there is none."""
    cut = text.find("\n", max(floor, since))
    while cut >= 0:
        line = text[text.rfind("\n", 0, cut) + 1 : cut].strip().rstrip("*_` ")
        if any(ch.isalpha() for ch in line) and not line.endswith(_LABEL_ENDS):
            return cut
        cut = text.find("\n", cut + 1)
    return None
