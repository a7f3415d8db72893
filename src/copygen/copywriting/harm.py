"""Brand-unsafe words: the ``unsafe`` check.

No brand wants its ad next to violence, torture, cruelty, death, abuse, weapons, drugs, sex,
slurs or religion as a joke, and a small model produces them from innocent briefs: a kayak
rental offering "waterboarding adventures", "#DogsCruelty" in a dog-walking post,
"#SunKilledHiker" for a solar charger. ``HARM`` is a lexicon per language (the words as
written, English ones matched in any inflection through text.base_forms). Hashtags and
CamelCase words are read as the words they join ("#DogsCruelty" is "dogs cruelty",
"#dogscruelty" too). A word the brief itself uses is allowed: a knife shop may say "knife".
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

import regex

from copygen.copywriting.grounding import Evidence
from copygen.copywriting.lexicon import english_words
from copygen.copywriting.subject import forms
from copygen.copywriting.text import base_forms, normalise, tokens
from copygen.domain import Flag

#: Brand-unsafe words per language, by theme (lower case; phrases are words in a row).
HARM: dict[str, dict[str, str]] = {
    "en": {
        "violence": "kill murder slaughter massacre assault stab strangle behead "
        "decapitate mutilate maim torture waterboard waterboarding violence violent bloodshed "
        "bloodbath gore gory lynch genocide terrorist terrorism kidnap hostage rape molest",
        "cruelty": "cruelty cruel abuse abusive maltreat",
        "death": "death deadly corpse suicide homicide funeral",
        "weapons": "gun rifle pistol firearm ammo ammunition grenade explosives knife knives "
        "machete dagger bombing",
        "drugs": "drugs cocaine heroin meth methamphetamine marijuana cannabis overdose "
        "narcotic opium junkie drugged steroids",
        "sex": "sex sexy sexual porn porno pornography nude nudes naked erotic orgasm horny "
        "fetish nsfw xxx hooker stripper slut whore boobs pussy",
        "slurs": "retard retarded faggot fag nigger nigga kike spic chink tranny dyke wetback gook",
        "religion": "blasphemy blasphemous satanic antichrist goddamn",
    },
    "de": {
        "violence": "töten tötet getötet mord morde mörder ermorden ermordet folter foltern "
        "gefoltert gewalt massaker blutbad vergewaltigung terror terrorist entführung",
        "cruelty": "grausam grausamkeit missbrauch missbraucht tierquälerei quälen",
        "death": "tod tödlich leiche selbstmord",
        "weapons": "waffe waffen pistole gewehr messer bombe bomben munition",
        "drugs": "drogen kokain heroin",
        "sex": "sex sexy porno nackt",
        "slurs": "neger schwuchtel",
        "religion": "gotteslästerung",
    },
    "fr": {
        "violence": "tuer tué tués tuée meurtre meurtrier torture torturer violence violent "
        "massacre viol terroriste enlèvement",
        "cruelty": "cruauté cruel maltraitance abus",
        "death": "mort mortel cadavre suicide",
        "weapons": "arme armes pistolet fusil couteau bombe munitions",
        "drugs": "drogue drogues cocaïne héroïne",
        "sex": "sexe sexy porno",
        "slurs": "pédé bougnoule bâtard batard",
        "religion": "blasphème",
    },
    "es": {
        "violence": "matar mata asesinato asesino tortura torturar violencia violento masacre "
        "violación terrorista secuestro",
        "cruelty": "crueldad cruel abuso maltrato",
        "death": "muerte muerto cadáver suicidio",
        "weapons": "arma armas pistola rifle cuchillo bomba munición",
        "drugs": "droga drogas cocaína heroína",
        "sex": "sexo sexy porno desnudo desnuda",
        "slurs": "maricón sudaca",
        "religion": "blasfemia",
    },
}
#: Themes matched as written (or with a plural s) only: inflecting them finds innocent words
#: ("spices" is not a slur).
_AS_WRITTEN = frozenset({"slurs"})
_WORDS = {
    language: frozenset(
        normalise(word)
        for theme, words in table.items()
        if theme not in _AS_WRITTEN
        for word in words.split()
    )
    for language, table in HARM.items()
}
_EXACT = {
    language: frozenset(
        normalise(word)
        for theme, words in table.items()
        if theme in _AS_WRITTEN
        for word in words.split()
    )
    for language, table in HARM.items()
}
#: Words that inflect a harmful one and are everyday slang ("killer views").
_SLANG = frozenset({"killer", "killers"})
#: "cruelty-free", "drug-free": the word negated, a claim rather than harm.
_NEGATED = frozenset({"free", "frei", "libre", "sin"})
_TAG = regex.compile(r"#([\p{L}\p{N}_]++)")
_CAMEL_PART = regex.compile(r"\p{Lu}?\p{Ll}+|\p{Lu}+(?!\p{Ll})|\p{N}+")
#: The longest joined hashtag that is split into words (longer ones are left whole).
MAX_SEGMENTED = 40


def unsafe_words(text: str, evidence: Evidence, languages: Iterable[str] = ()) -> tuple[Flag, ...]:
    """An ``unsafe`` flag for each brand-unsafe word (or the hashtag holding it) of ``text``,
    by the lexicons of the brief's language and of ``languages`` (those the text is in)."""
    chosen = [lang for lang in (evidence.language, *languages) if lang in HARM] or ["en"]
    lexicon = frozenset().union(*(_WORDS[lang] for lang in chosen))
    exact = frozenset().union(*(_EXACT[lang] for lang in chosen))
    harmful: dict[tuple[str, str], bool] = {}  # each word once, however often it recurs
    found = []
    for written, parts in _readings(text):
        for part in parts:
            if part not in harmful:
                harmful[part] = _harmful(*part, lexicon, exact, evidence)
            if harmful[part]:
                found.append(written)
                break
    return tuple(Flag("unsafe", piece) for piece in dict.fromkeys(found))


def _harmful(
    word: str, following: str, lexicon: frozenset[str], exact: frozenset[str], evidence: Evidence
) -> bool:
    as_written = word in exact or (word.endswith("s") and word[:-1] in exact)
    if not as_written and forms(word).isdisjoint(lexicon):
        return False
    return following not in _NEGATED and word not in _SLANG and not evidence.supports_word(word)


def _readings(text: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Each hashtag and each word of ``text`` as written, with the words it is made of (each
    with the word after it)."""
    for match in _TAG.finditer(text):
        yield match.group(), _with_next(_split(match.group(1)))
    plain = _TAG.sub(" ", text)
    found = tokens(plain)
    for i, token in enumerate(found):
        following = normalise(found[i + 1]) if i + 1 < len(found) else ""
        parts = _CAMEL_PART.findall(token) if any(c.isupper() for c in token[1:]) else [token]
        pairs = _with_next([normalise(part) for part in parts])
        yield token, [*pairs[:-1], (pairs[-1][0], following)]


def _with_next(parts: list[str]) -> list[tuple[str, str]]:
    return [(part, parts[i + 1] if i + 1 < len(parts) else "") for i, part in enumerate(parts)]


def _split(tag: str) -> list[str]:
    """A hashtag's words: by its capitals ("DogsCruelty"), else into dictionary words
    ("dogscruelty" → dogs, cruelty), else whole."""
    parts = [normalise(part) for part in _CAMEL_PART.findall(tag)]
    if len(parts) > 1:
        return [word for part in parts for word in _segment(part) or [part]]
    return _segment(normalise(tag)) or [normalise(tag)]


@functools.lru_cache(maxsize=4096)
def _segment_cached(word: str) -> tuple[str, ...] | None:
    if len(word) > MAX_SEGMENTED or not word.isalpha():
        return None
    known = _known()
    # best[i]: the fewest dictionary words that make word[:i]
    best: list[tuple[str, ...] | None] = [()] + [None] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 20), end):
            piece, before = word[start:end], best[start]
            if before is None or (len(piece) < 2 and piece not in ("a", "i")):
                continue
            if piece in known or not base_forms(piece).isdisjoint(known):
                candidate = (*before, piece)
                if best[end] is None or len(candidate) < len(best[end] or ()):
                    best[end] = candidate
    return best[-1]


@functools.cache
def _known() -> frozenset[str]:
    """The words a hashtag may be split into: built once (the union copies ~100k words; per
    split it was 6% of the server's event loop under 16 copy users)."""
    return frozenset(english_words() | _WORDS["en"])


def _segment(word: str) -> list[str] | None:
    found = _segment_cached(word)
    return list(found) if found else None
