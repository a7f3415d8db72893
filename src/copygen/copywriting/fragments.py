"""Text that is not (only) the copy: the ``fragment`` check.

A chat model wraps copy in talk and leaves its scaffolding in: a label or preamble ("Google
Ads:", "Here are three headlines", "Sure!"), numbering ("#1:", "Option 2 -"), the prompt's
own field names ("Premise:", "Product: Keystone Payroll"), a note to the user ("I'm ready to
help you craft…"), a bracket placeholder ("[Brand]", "$X"), a link, e-mail address, @handle or
phone number the brief never gave, or a text that stops mid-thought ("…the best of the").
clean_text (postprocess.py) strips the labels it can; what is left here makes the variant
unusable as it stands. Each rule is a table row; the flag's text is the offending words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from copygen.copywriting.grounding import Evidence
from copygen.copywriting.subject import common
from copygen.copywriting.text import URL, split_sentences, tokens
from copygen.domain import Flag

_I = re.IGNORECASE | re.MULTILINE
#: Where copy goes and what kind of copy it is: as a label ("Google Ads:", "SMS -",
#: "Headline 2:", "Premise:") they introduce copy rather than being copy.
_PLATFORMS = (
    r"google(?:\s+ads?)?|facebook|instagram|meta|linkedin|twitter|x|sms|e-?mail|seo|amazon"
    r"|app\s+store|play\s+store"
)
_KINDS = (
    r"ads?|ad\s+copy|headlines?|descriptions?|subject(?:\s+line)?|titles?|taglines?|captions?"
    r"|posts?|tweets?|text|copy|primary\s+text|meta\s+description|sms|message|options?"
    r"|variants?|versions?|examples?|answers?|responses?|hashtags?|cta|call\s+to\s+action|hook"
    r"|premise|product(?:\s+name)?|brand(?:s|ed)?|claims?|facts?|audience|tone|channel"
    r"|keywords?|framework|authority|debug|labels?|likes|output|result|draft|revised\s+version"
)
_LABEL_WORDS = rf"(?:{_PLATFORMS})(?:\s+(?:{_KINDS}))?|(?:{_KINDS})"
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++")
#: What a fragment looks like: (name, pattern). Matched anywhere in the text.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # "Google Ads:", "Headline 2 -", "Product: Keystone Payroll" at the start of a line
    ("label", re.compile(
        rf"^\s*(?:{_LABEL_WORDS})(?:\s*\d+)?\s*(?:\([^)]*\))?\s*[:–-](?=\s|$)", _I
    )),
    ("label", re.compile(r"^(?:[\w'-]+\s){0,2}[\w'-]+:\s*$", _I)),  # a line that is only a label
    ("numbering", re.compile(
        r"(?:^|\s)(?:#\s?\d{1,2}\s*[:.)-]|\(\d{1,2}\))(?=\s)|^\s*\d{1,2}[.)]\s", _I
    )),
    ("preamble", re.compile(
        r"^\s*(?:sure|certainly|of\s+course|absolutely|okay|ok|great\s+question"
        r"|incredible\s+idea)\b[\s!,.]"
        r"|\bhere(?:'s|’s|\s+is|\s+are)\s+(?:a|an|the|some|my|your|\d+|one|two|three|four|five"
        r"|several|a\s+few|revised|another)\b"
        r"|\bi\s+(?:can|could|will|would|have)\s+(?:help|craft|write|create|assist|customi[sz]e"
        r"|make|generate|draft|created|written|crafted|provide)\b"
        r"|\bi(?:'m|’m|\s+am)\s+(?:ready|happy|glad|here|excited)\s+to\s+(?:help|assist|craft"
        r"|write|create)\b|\bi(?:'m|’m|\s+am)\s+your\s+(?:go-to\s+)?(?:creative\s+)?(?:editor"
        r"|assistant|copywriter|writer)\b|\b(?:warmest|best|kind)\s+regards\b|\bsincerely,"
        r"|\bthe\s+ad\s+has\s+been\s+removed\b"
        r"|\bhow\s+can\s+i\s+(?:help|assist)\b|\bwhat\s+can\s+i\s+(?:help|do\s+for\s+you"
        r"|say\s+to\s+(?:you|make))\b"
        r"|\bin\s+your\s+own\s+words\b|\bwrite\s+the\s+ad\b|\bas\s+an\s+ai\b|\bfeel\s+free\s+to\b"
        r"|\bi\s+hope\s+this\s+helps\b|\bplease\s+(?:provide|let\s+me|tell\s+me)\b"
        r"|\bwhat(?:'s|’s|\s+is)\s+your\s+(?:business|product|brand|topic)\s*\?"
        r"|\b(?:this\s+(?:post|tweet)\s+(?:has\s+been|was)\s+(?:removed|deleted))\b",
        _I,
    )),
    ("placeholder", re.compile(
        r"\[[^\[\]]{0,40}\]|\{[^{}]{0,40}\}|<[^<>]{1,40}>|\$X+\b|\bX{2,}%?|\bX%"
        r"|\b(?:TBD|TBC|lorem)\b"
        r"|\b(?:insert|your)\s+(?:brand|product|company)\s+name\b",
        re.IGNORECASE,
    )),
    ("contact", re.compile(
        _EMAIL.pattern  # an e-mail address
        + r"|(?<![\w@])@[A-Za-z0-9_]{2,}"  # a handle
        r"|(?<!\w)(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?"  # a phone number
        r"\d{3,4}[\s.-]\d{3,4}(?:[\s.-]\d{2,4})?(?!\w)",
    )),
)  # fmt: skip
#: Words a finished text never ends on, per language (articles, prepositions, conjunctions,
#: possessives): "the best of the", "With every candle you can choose from".
UNFINISHED_ENDINGS: dict[str, frozenset[str]] = {
    "en": frozenset(
        """
        a an the and or but of to for with from by at as that which who whose than your our my
        their his her its this these those is are was were will would can could should into onto
        such
        """.split()  # noqa: SIM905
    ),
    "de": frozenset(
        """
        der die das den dem des ein eine einen einem einer und oder aber mit für von zu zum zur
        bei auf aus nach über unter vor um durch ohne dass weil wenn als wie ist sind dein deine
        ihr ihre unser unsere
        """.split()  # noqa: SIM905
    ),
    "fr": frozenset(
        """
        le la les un une des du de au aux et ou mais avec pour par sans sur sous dans chez entre
        vers que qui dont est sont votre vos notre nos son sa ses leur
        """.split()  # noqa: SIM905
    ),
    "es": frozenset(
        """
        el la los las un una unos unas y o pero de del al con sin por para sobre entre hasta
        desde que quien es son tu tus su sus nuestro nuestra
        """.split()  # noqa: SIM905
    ),
}
_TRAILING_JOIN = re.compile(r"[,:;&+/–—-]\s*$")
#: A leading label ("Google Ads:", "Option 2 -") or preamble ("Sure!", "Here are three
#: headlines:") that ``drop_preamble`` removes.
_LEADING = re.compile(
    rf"^\s*(?:(?:{_LABEL_WORDS})(?:\s*\d+)?\s*[:–-]\s"
    r"|(?:sure|certainly|of\s+course|absolutely|okay)\s*[!,.]\s*"
    r"|here(?:'s|’s|\s+is|\s+are)\s[^:.!?\n]{0,60}:\s*"
    r"|#?\d{1,2}\s*[:.)]\s)",
    re.IGNORECASE,
)


def fragments(text: str, evidence: Evidence) -> tuple[Flag, ...]:
    """A ``fragment`` flag for each label, preamble, numbering, placeholder, contact the brief
    lacks, and for a text that stops mid-thought."""
    found = [*_matches(text, evidence), *_unfinished(text, evidence)]
    return tuple(Flag("fragment", piece) for piece in dict.fromkeys(found))


def _matches(text: str, evidence: Evidence) -> Iterator[str]:
    for name, pattern in PATTERNS:
        for match in pattern.finditer(text):
            piece = match.group().strip()
            if name == "contact" and _given(piece, evidence):
                continue
            yield piece
    for link in URL.findall(_EMAIL.sub(" ", text)):  # an address's domain is no link
        if not _given(link.rstrip("/."), evidence):
            yield link


def _given(piece: str, evidence: Evidence) -> bool:
    """Whether the brief gives ``piece`` (a link, address, handle or number) whole: the
    handle "@brewline" is not given by "hello@brewline.com"."""
    pattern = rf"(?<![\w@.+-]){re.escape(piece.casefold())}(?![\w@-])"
    return re.search(pattern, evidence.text) is not None


def _unfinished(text: str, evidence: Evidence) -> Iterator[str]:
    """The last sentence of a text that stops mid-thought: on a joining word or mark, or
    (after a sentence that did end) on a cut-off non-word ("…ready to take ca")."""
    stripped = text.rstrip()
    found = tokens(stripped)
    if len(found) < 2:
        return
    last = found[-1]
    endings = UNFINISHED_ENDINGS.get(evidence.language, UNFINISHED_ENDINGS["en"])
    sentences = split_sentences(stripped)
    on_word = stripped.endswith(last)
    cut_off = (
        on_word
        and len(sentences) > 1
        and evidence.language == "en"
        and last.isalpha()
        and last.islower()
        and not common(last)
        and not evidence.supports_word(last)
    )
    if (
        _TRAILING_JOIN.search(stripped)
        or (on_word and last.casefold() in endings and len(found) > 2)
        or cut_off
    ):
        yield sentences[-1]


def drop_preamble(text: str) -> str:
    """``text`` without a leading label or preamble that ends at a colon or sentence end,
    where copy follows it: "Google Ads: Trail shoes…" → "Trail shoes…", "Sure! Here are three
    headlines: Trail shoes…" → "Trail shoes…"."""
    for _ in range(3):
        match = _LEADING.match(text)
        if match is None or not text[match.end() :].strip():
            return text
        text = text[match.end() :].lstrip()
    return text
