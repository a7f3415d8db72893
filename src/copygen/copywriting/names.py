"""Names the brief spells one way and a variant another (the ``misspelt_name`` check), and their
repair to the exact spelling.

A small model "corrects" names: "NorthWind" for Northwind, "Fit Track" for FitTrack, "Tidal Kayak
Rental" for Tidewater Kayak Tours, "PetPaws" for PetPal. Against the brief's names
(subject.Subject: the product's and brand's proper names and their phrases) a word is a near miss
when it is

* **re-cased**: the same letters in another case ("NorthWind", "fittrack", "KILN"; a lower-case
  ordinary word such as "pulse" is only a word, unless a whole name phrase is lower-cased:
  "maple street pizza");
* **split or joined**: two words that make the name ("Fit Track", "Cloud NEST"), or one word
  made of a name phrase ("BlueHeron");
* **letters off**: a non-word within ``max_distance`` edits of a name of at least five letters
  ("Lumina" for Lumen, "NuVorin" for Nuvora), capitalised unless the name is distinctive;
* **a different word in the name's place**: a capitalised word next to the rest of a name
  phrase, where that name's word should stand ("Pinecrown Leadership Retreat", "Cloud Nexar",
  "PetPuppies"), when it is a non-word or shares the name's first letters ("Tidal Kayak").

Hashtags, @handles and links are left alone: "#FitTrackLife" joins words by convention.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import regex

from copygen.copywriting.grounding import Evidence
from copygen.copywriting.subject import FILLER, Subject, common, forms
from copygen.copywriting.text import URL, WORD
from copygen.domain import Flag

#: Hashtags, handles and e-mail addresses: read as one unit, never as words of copy.
# An address is tried only where its run of characters starts (the guard), so a long word
# is read once, not once per letter.
_TAGS = regex.compile(r"[#@][\w-]++|(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++")
#: What may stand between two words of one name: spaces, a hyphen, an ampersand.
_JOINER = regex.compile(r"[\s&+-]{1,3}")
_CAMEL_PART = regex.compile(r"\p{Lu}?\p{Ll}+|\p{Lu}+(?!\p{Ll})|\d+")
#: Names shorter than this are not checked for letters off (too many real words are near).
MIN_NEAR_MISS_LETTERS = 5
#: Letters a word may add to a name and still be a near miss of it ("soundnesting").
MAX_ADDED = 3
#: A shared start that makes a real word a stand-in for a name ("Tidal" for "Tidewater").
MIN_SHARED_START = 3


@dataclass(frozen=True, slots=True)
class Miss:
    """A near miss of a name: ``text[start:end]`` is written where ``name`` should be;
    ``repairable`` when replacing it is unambiguous."""

    start: int
    end: int
    written: str
    name: str
    repairable: bool = True


@dataclass(frozen=True, slots=True)
class _Word:
    start: int
    end: int
    text: str  # without a possessive 's
    key: str  # the letters and digits, case-folded


def misspelt_names(text: str, evidence: Evidence) -> tuple[Flag, ...]:
    """A ``misspelt_name`` flag for each near miss of a brief's name in ``text``."""
    misses = find_misses(text, evidence.subject)
    return tuple(Flag("misspelt_name", w) for w in dict.fromkeys(m.written for m in misses))


def repair_names(text: str, evidence: Evidence) -> str:
    """``text`` with each unambiguous near miss of a name written as the brief writes it:
    "Fit Track Pulse" → "FitTrack Pulse", "NorthWind" → "Northwind"."""
    text = unicodedata.normalize("NFC", text)
    repaired = text
    taken = len(text) + 1
    for miss in sorted(find_misses(text, evidence.subject), key=lambda m: -m.start):
        if miss.repairable and miss.end <= taken:
            repaired = repaired[: miss.start] + miss.name + repaired[miss.end :]
            taken = miss.start
    return repaired


def find_misses(text: str, subject: Subject) -> list[Miss]:
    """Every near miss of ``subject``'s names in ``text``, one per stretch of text."""
    text = unicodedata.normalize("NFC", text)
    found = _words(text)
    misses: dict[tuple[int, int], Miss] = {}
    for miss in _all_misses(text, found, subject):
        misses.setdefault((miss.start, miss.end), miss)
    # A miss inside a longer one ("PULSE" of "FITTRACK PULSE") is part of it.
    return sorted(
        (
            miss
            for (start, end), miss in misses.items()
            if not any(s <= start and end <= e and (s, e) != (start, end) for s, e in misses)
        ),
        key=lambda m: m.start,
    )


def max_distance(name: str) -> int:
    """How many letters a word may be off a name and still be a near miss of it (two only
    when the first letter is right: "Lumina" for Lumen, not "Human")."""
    return 0 if len(name) < MIN_NEAR_MISS_LETTERS else 2


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Optimal string alignment distance (insert, delete, change, swap two neighbours), or
    ``limit + 1`` once it is sure to exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], previous2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        previous2, previous = previous, row
    return previous[-1]


# --- the four kinds of miss ----------------------------------------------------------------


def _all_misses(text: str, found: Sequence[_Word], subject: Subject) -> Iterator[Miss]:
    names = [name for name in subject.names if len(name) >= MIN_SHARED_START]
    keys = {_key(name) for name in names}
    pairs = list(_adjacent(text, found))
    for name in names:
        yield from _recased(found, name, subject)
        yield from _split(text, pairs, name)
        yield from _letters_off(text, found, pairs, name, keys, subject)
    for phrase in subject.phrases:
        yield from _phrase_recased(text, found, phrase, subject)
        yield from _phrase_variant(text, found, phrase, subject)
        yield from _joined(found, phrase, keys)
        yield from _stand_ins(text, found, pairs, phrase, keys, subject)


def _recased(found: Sequence[_Word], name: str, subject: Subject) -> Iterator[Miss]:
    wanted = _key(name)
    for word in found:
        if word.key == wanted and word.text != name:
            if word.text.islower() and not subject.distinctive(name):
                continue  # "pulse", "heron": the ordinary word, not the name
            yield Miss(word.start, word.end, word.text, name)


def _split(text: str, pairs: Sequence[tuple[_Word, _Word]], name: str) -> Iterator[Miss]:
    wanted = _key(name)
    for first, second in pairs:
        if len(first.key) + len(second.key) == len(wanted) and first.key + second.key == wanted:
            yield Miss(first.start, second.end, text[first.start : second.end], name)


def _letters_off(
    text: str,
    found: Sequence[_Word],
    pairs: Sequence[tuple[_Word, _Word]],
    name: str,
    keys: set[str],
    subject: Subject,
) -> Iterator[Miss]:
    limit = max_distance(name)
    if limit == 0:
        return
    wanted = _key(name)
    near = range(len(wanted) - limit, len(wanted) + MAX_ADDED + 1)
    candidates = [(w.start, w.end, w.text, w.key, limit) for w in found if len(w.key) in near]
    # Two words read as one ("Home Harbors"), neither of them a name on its own; two letters
    # off only when both are capitalised ("talent for" is not TalentForge).
    for a, b in pairs:
        if len(a.key) + len(b.key) in near and a.key not in keys and b.key not in keys:
            both = a.text[0].isupper() and b.text[0].isupper()
            written = text[a.start : b.end]
            candidates.append((a.start, b.end, written, a.key + b.key, limit if both else 1))
    for start, end, written, key, allowed in candidates:
        if key in keys or not written[0].isupper() and not subject.distinctive(name):
            continue
        if key.startswith(wanted):  # the name with letters added ("Foxgloves", "soundnesting")
            yield Miss(start, end, written, name, repairable=False)
            continue
        distance = edit_distance(key, wanted, allowed)
        if not (0 < distance <= allowed and (distance == 1 or key[0] == wanted[0])):
            continue
        if not common(written.replace(" ", "")):  # a real word is no misspelling ("park" for
            yield Miss(start, end, written, name)  # Parkly); see _stand_ins


def _phrase_recased(
    text: str, found: Sequence[_Word], phrase: tuple[str, ...], subject: Subject
) -> Iterator[Miss]:
    """A name phrase of two or more names written in another case ("maple street")."""
    named = [part for part in phrase if part in subject.names]
    if len(named) < 2:
        return
    wanted = [forms(part) for part in named]
    starts = [i for i, word in enumerate(found) if not forms(word.text).isdisjoint(wanted[0])]
    for run in _runs_of(text, found, len(named), starts):
        if all(not forms(w.text).isdisjoint(f) for w, f in zip(run, wanted, strict=True)):
            written = text[run[0].start : run[-1].end]
            if [w.text for w in run] != named:
                yield Miss(run[0].start, run[-1].end, written, _rewrite(written, run, named))


def _phrase_variant(
    text: str, found: Sequence[_Word], phrase: tuple[str, ...], subject: Subject
) -> Iterator[Miss]:
    """A name phrase of three or more words with one of them changed ("Harbor Light Festival"
    for Harbor Lights Festival): the rest of the phrase says which name it is."""
    if len(phrase) < 3 or not any(part in subject.names for part in phrase):
        return
    keys = [_key(part) for part in phrase]
    starts = [i for i, w in enumerate(found) if w.key in (keys[0], keys[1])]
    for i in starts:
        for run in _runs_of(text, found, len(phrase), [i, i - 1] if i else [i]):
            wrong = [j for j, (w, key) in enumerate(zip(run, keys, strict=True)) if w.key != key]
            if len(wrong) != 1:
                continue
            word, expected = run[wrong[0]], phrase[wrong[0]]
            if edit_distance(word.key, _key(expected)) <= 2 and word.text[:1].isupper():
                yield Miss(word.start, word.end, word.text, expected)


def _joined(found: Sequence[_Word], phrase: tuple[str, ...], keys: set[str]) -> Iterator[Miss]:
    """One word made of a name phrase's words ("BlueHeron" for Blue Heron)."""
    if len(phrase) < 2 or _key("".join(phrase)) in keys:
        return  # a CamelCase name's own parts: joined is how the brief writes it
    for i in range(len(phrase) - 1):
        joined = phrase[i] + " " + phrase[i + 1]
        wanted = _key(joined)
        for word in found:
            if word.key == wanted:
                yield Miss(word.start, word.end, word.text, joined)


def _stand_ins(
    text: str,
    found: Sequence[_Word],
    pairs: Sequence[tuple[_Word, _Word]],
    phrase: tuple[str, ...],
    keys: set[str],
    subject: Subject,
) -> Iterator[Miss]:
    """A different capitalised word where a phrase's name stands, next to the phrase's other
    words: "Pinecrown Leadership" for "Pinecrest Leadership", "Cloud Nexar" for CloudNest."""
    if len(phrase) < 2:
        return
    camel = _key("".join(phrase)) in keys
    parts = [_key(part) for part in phrase]
    members = {form for part in phrase for form in forms(part)}
    for first, second in pairs:
        if forms(first.text).isdisjoint(members) and forms(second.text).isdisjoint(members):
            continue
        for i in range(len(phrase) - 1):
            if _same(first, parts[i]) and not _same(second, parts[i + 1]):
                slot, other, word = i + 1, first, second
            elif _same(second, parts[i + 1]) and not _same(first, parts[i]):
                slot, other, word = i, second, first
            else:
                continue
            expected = phrase[slot]
            # Next to a name's own word a non-word will do ("Cloud Nexar"); next to a common
            # word of the phrase the stand-in must share the name's start ("Tidal Kayak").
            named = camel or phrase[slot + 1 if slot == i else i] in subject.names
            if not (camel or expected in subject.names):
                continue
            if not _stands_in(word.text, expected, sharing=not named):
                continue
            if word.key in keys:
                continue
            if camel:  # the whole CamelCase name is what is misspelt
                start, end = min(other.start, word.start), max(other.end, word.end)
                yield Miss(start, end, text[start:end], "".join(phrase), _close(word, expected))
            else:
                yield Miss(word.start, word.end, word.text, expected, _close(word, expected))
    if camel:
        yield from _camel_stand_ins(found, phrase, keys)


def _camel_stand_ins(
    found: Sequence[_Word], phrase: tuple[str, ...], keys: set[str]
) -> Iterator[Miss]:
    """A CamelCase word that shares a CamelCase name's first part and not the rest
    ("PetPaws", "PetPuppies" for PetPal; "DataHaven" for DataHive)."""
    name = "".join(phrase)
    first = _key(phrase[0])
    for word in found:
        if not word.key.startswith(first) or word.key in keys:
            continue
        parts = _CAMEL_PART.findall(word.text)
        if len(parts) < 2 or _key(parts[0]) != first:
            continue
        if _key(parts[1]) != _key(phrase[1]):
            close = len(parts) == len(phrase) and edit_distance(word.key, _key(name)) <= 2
            yield Miss(word.start, word.end, word.text, name, close)


def _stands_in(written: str, expected: str, sharing: bool) -> bool:
    """Whether a word next to the rest of a name stands in for its ``expected`` word: a word
    sharing its first letters ("Tidal", "Glowing", "oakleach"), or (unless ``sharing`` is
    required) a capitalised non-word ("Nexar" in "Cloud Nexar")."""
    if written.casefold() in FILLER or written.isdigit():
        return False
    shared = len(_common_start(_key(written), _key(expected))) >= MIN_SHARED_START
    if not written[:1].isupper():
        return shared and not common(written)
    return shared or (not sharing and not common(written))


def _same(word: _Word, key: str) -> bool:
    """Whether ``word`` is the phrase's word ``key``, in any inflection ("Accountant")."""
    return word.key == key or not forms(word.text).isdisjoint(forms(key))


def _close(word: _Word, expected: str) -> bool:
    """Whether replacing ``word`` by ``expected`` is a safe repair: they share a start."""
    return len(_common_start(word.key, _key(expected))) >= MIN_SHARED_START


# --- words and their neighbours ------------------------------------------------------------


def _words(text: str) -> list[_Word]:
    """The words of ``text`` with their offsets, hashtags, handles and links masked."""
    masked = text
    for pattern in (URL, _TAGS):
        masked = pattern.sub(lambda m: " " * len(m.group()), masked)
    found = []
    for match in WORD.finditer(masked):
        word = match.group()
        if word[-2:].lower() in ("'s", "’s") and len(word) > 3:
            word = word[:-2]
        found.append(_Word(match.start(), match.start() + len(word), word, _key(word)))
    return found


def _adjacent(text: str, found: Sequence[_Word]) -> Iterator[tuple[_Word, _Word]]:
    """Neighbouring words with only spaces, a hyphen or an ampersand between them."""
    for first, second in zip(found, found[1:], strict=False):
        between = text[first.end : second.start]
        if between == "" or _JOINER.fullmatch(between):
            yield first, second


def _runs_of(
    text: str, found: Sequence[_Word], size: int, starts: Sequence[int]
) -> Iterator[list[_Word]]:
    for i in starts:
        run = list(found[i : i + size])
        if len(run) < size:
            continue
        if all(
            _JOINER.fullmatch(text[a.end : b.start]) for a, b in zip(run, run[1:], strict=False)
        ):
            yield run


def _rewrite(written: str, run: Sequence[_Word], names: Sequence[str]) -> str:
    """``written`` (the text of ``run``) with each word replaced by its name."""
    offset = run[0].start
    out = written
    for word, name in sorted(zip(run, names, strict=True), key=lambda p: -p[0].start):
        out = out[: word.start - offset] + name + out[word.end - offset :]
    return out


def _key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _common_start(a: str, b: str) -> str:
    size = 0
    while size < min(len(a), len(b)) and a[size] == b[size]:
        size += 1
    return a[:size]
