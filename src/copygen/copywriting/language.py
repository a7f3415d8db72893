"""Which language a text is in, by its function words: a stopword profile per supported
language (en, de, fr, es). Copy in the wrong language is unusable however good it is, and a
small model asked for German often answers in English.

A sentence votes for the language whose function words it holds most of; a text is in the
language most of its function words vote for. Too short to tell (fewer than
``MIN_FUNCTION_WORDS`` function words, or a tie) is None, never a guess: "FitTrack Pulse
Smart Ring" is in no language in particular.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from copygen.copywriting.text import split_sentences, words
from copygen.domain import Flag

#: The commonest function words (articles, pronouns, prepositions, conjunctions, auxiliaries)
#: of each language, lower case. Words two languages share ("in", "de", "la", "en") count
#: for both, so they never decide alone; ordinary English words are left out of the other
#: lists ("car", "son", "hat", "war", "hay") so that English copy never reads as French.
FUNCTION_WORDS: Mapping[str, frozenset[str]] = {
    "en": frozenset(
        """
        the a an and or but of to in on at for with from by about as into than then so if
        is are was were be been being am do does did have has had will would can could should
        may might must shall i you he she it we they me him her us them my your his its our
        their this that these those what which who whom whose where when why how there here
        not no all any some every each more most just only also very too out up down over off
        get got let lets don't can't won't it's you're we're i'm that's what's there's your
        """.split()  # noqa: SIM905 - a word list reads better as text
    ),
    "de": frozenset(
        """
        der die das den dem des ein eine einen einem einer eines und oder aber auch nicht kein
        keine ist sind waren wird werden wurde haben hatte bist sein ich du er sie
        es wir ihr mich dich sich uns euch mein dein unser euer ihre ihren ihrem mit von zu zum
        zur bei für auf aus nach über unter vor durch gegen ohne im am ins vom als wie wenn
        dass weil noch schon nur sehr mehr jetzt hier dort was wer wo warum dieser diese dieses
        jede jeden jeder alle kann können soll sollte muss müssen wollen
        """.split()  # noqa: SIM905
    ),
    "fr": frozenset(
        """
        le la les un une des du de au aux et ou mais donc ni ne pas est sont était
        être avoir a ai as ont avons avez je tu il elle nous vous ils elles on me te se lui
        leur leurs mon ma mes ton ta tes sa ses notre nos votre vos ce cet cette ces qui
        que quoi dont où quand comme par avec sans sur sous dans chez entre vers très
        aussi bien tout tous toute toutes c'est qu'il d'un d'une l'on j'ai n'est y en
        """.split()  # noqa: SIM905
    ),
    "es": frozenset(
        """
        el la los las un una unos unas y o pero ni que de del al en con sin por para sobre
        entre hasta desde es fue ser estar está están ha han yo tú él ella
        nosotros vosotros ellos ellas me te se nos os le les lo mi mis tu tus su sus nuestro
        nuestra este esta estos estas ese esa eso qué quien cuando donde como muy más también
        ya todo todos toda todas cada porque si no
        """.split()  # noqa: SIM905
    ),
}
SUPPORTED = frozenset(FUNCTION_WORDS)
#: A text (or sentence) with fewer function words than this is too short to tell.
MIN_FUNCTION_WORDS = 2


def function_word_counts(text: str) -> Counter[str]:
    """How many of ``text``'s words are function words of each language."""
    counts: Counter[str] = Counter()
    for word in words(text):
        for language, table in FUNCTION_WORDS.items():
            if word in table:
                counts[language] += 1
    return counts


def identify(text: str) -> str | None:
    """The language ``text`` is written in, or None when too short to tell or tied.

    >>> identify("Das Ladegerät für alle, die gern wandern")
    'de'
    >>> identify("Wanderrucksack: The best products of the world")
    'en'
    >>> identify("FitTrack Pulse Smart Ring") is None
    True
    """
    counts = function_word_counts(text)
    if not counts:
        return None
    (best, hits), *rest = counts.most_common(2) + [("", 0)]
    if hits < MIN_FUNCTION_WORDS or hits == rest[0][1]:
        return None
    return best


def languages_in(text: str) -> tuple[str, ...]:
    """Every language some sentence of ``text`` (or the whole text) is identified as, most
    function words first: a text that mixes two languages names both."""
    votes: Counter[str] = Counter()
    for sentence in (*split_sentences(text), text):
        if (language := identify(sentence)) is not None:
            votes[language] += sum(function_word_counts(sentence).values())
    return tuple(language for language, _ in votes.most_common())


def wrong_language(text: str, language: str) -> tuple[Flag, ...]:
    """A ``wrong_language`` flag naming the language ``text`` is (partly) in, when that is not
    the brief's ``language`` (a supported one); nothing when too short to tell."""
    wanted = language.split("-")[0].lower()
    if wanted not in SUPPORTED:
        return ()
    others = [found for found in languages_in(text) if found != wanted]
    return (Flag("wrong_language", others[0]),) if others else ()
