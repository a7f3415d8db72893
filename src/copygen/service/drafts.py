"""Draft text as it streams (``/v1/copy`` with ``stream: true``): unchecked, except that what
the banned and brand-safety lists catch is masked.

A banned word can arrive split over deltas ("sh" + "it"), and a banned phrase over several
words ("miracle" + " cure"), so a row's text is released only up to where nothing banned could
still begin: the word being written is held until a character ends it, and a run of words
that begins a banned phrase until the phrase is complete or broken. Words are matched the way
the copy checks match them (copywriting/postprocess.banned_found: normalised, each word's
base forms, "risk-free" catches "risk free"); a match becomes MASK. When the row finishes,
whatever is held is released.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from copygen.config import Settings
from copygen.copywriting.rounds import BriefRounds
from copygen.copywriting.safety import brand_safety_words
from copygen.copywriting.text import WORD, base_forms
from copygen.domain import CopyBrief

MASK = "•••"
#: An apostrophe may still be followed by the rest of its word ("hiker'" + "s").
_APOSTROPHES = ("'", "’")

Phrase = tuple[frozenset[str], ...]


def draft_phrases(brief: CopyBrief, settings: Settings) -> tuple[Phrase, ...]:
    """What a brief's drafts mask: what its checks refuse (BriefRounds: the brief's banned
    words, the brand-safety list, its brand's forbidden terms)."""
    always = brand_safety_words(settings.brand_safety_words)
    return banned_phrases(BriefRounds.new(brief, always).banned)


def banned_phrases(banned: Iterable[str]) -> tuple[Phrase, ...]:
    """Each banned word or phrase as its words' base forms (entries without a word, an emoji
    say, are skipped: the checks skip them too)."""
    phrases = (tuple(base_forms(m.group()) for m in WORD.finditer(entry)) for entry in banned)
    return tuple(phrase for phrase in phrases if phrase)


@dataclass(frozen=True, slots=True)
class _Word:
    start: int
    end: int
    forms: frozenset[str]


@dataclass
class DraftMasker:
    """One row's draft: ``feed`` each delta; what it returns is safe to send."""

    phrases: Sequence[Phrase]
    _text: str = ""
    #: Where the text not yet sent starts (never inside a word).
    _sent: int = 0

    def feed(self, delta: str, *, final: bool = False) -> str:
        """The text to send for ``delta``; ``final``: the row finished, release it all."""
        self._text += delta
        text = self._text
        words = [
            _Word(m.start(), m.end(), base_forms(m.group()))
            for m in WORD.finditer(text, self._sent)
        ]
        complete = words
        if not final and words and (text[words[-1].end :] in ("", *_APOSTROPHES)):
            complete = words[:-1]  # the word being written may go on
        hold = len(text) if final or len(complete) == len(words) else words[-1].start
        for i, word in enumerate([] if final else complete):
            rest = complete[i:]
            if any(len(phrase) > len(rest) and _matches(phrase, rest) for phrase in self.phrases):
                hold = min(hold, word.start)  # may begin a banned phrase: wait for its end
                break
        spans: list[tuple[int, int]] = []
        for i in range(len(complete)):
            for phrase in self.phrases:
                run = complete[i : i + len(phrase)]
                if len(run) == len(phrase) and _matches(phrase, run):
                    spans.append((run[0].start, run[-1].end))
        return self._release(hold, spans)

    def _release(self, hold: int, spans: list[tuple[int, int]]) -> str:
        """Text from what was sent up to ``hold`` (a span crossing it is taken whole), with
        each span masked."""
        out, position = [], self._sent
        for start, end in sorted(spans):
            if start >= hold or end <= position:
                continue
            hold = max(hold, end)
            out.append(self._text[position:start])
            out.append(MASK)
            position = end
        out.append(self._text[position:hold])
        self._sent = max(hold, position)
        return "".join(out)


def _matches(phrase: Phrase, words: Sequence[_Word]) -> bool:
    """The words are the phrase's first words (each sharing a base form with its own)."""
    return all(not want.isdisjoint(word.forms) for want, word in zip(phrase, words, strict=False))
