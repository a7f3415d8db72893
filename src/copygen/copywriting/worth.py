"""Worth: would an editor accept this variant? The checks beyond form (limits, keywords,
grounding) that each catch one way a small model's copy gets thrown away, run together:

=================  ===========================================================  ==============
flag type          what                                                         module
=================  ===========================================================  ==============
``off_topic``      no word of the brief (or of its product's name, for titles)  subject.py
``misspelt_name``  a near miss of the brief's names ("NorthWind", "Fit Track")  names.py
``fragment``       labels, preambles, numbering, placeholders, contacts,        fragments.py
                   a text that stops mid-thought
``unsafe``         violence, cruelty, death, weapons, drugs, sex, slurs…        harm.py
``invented_claim`` exclusivity, luxury, "most advanced", delivery, urgency…     claims.py
``incoherent``     repetition, non-words, no grammar                            coherence.py
``wrong_language`` not in the brief's language                                  language.py
=================  ===========================================================  ==============

When the text is in another language than the brief's, that language's claim, risky-claim
and safety tables apply too. Pure: postprocess.check_variant applies the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from copygen.copywriting.claims import invented_claims
from copygen.copywriting.coherence import incoherence
from copygen.copywriting.coherence import measure as measure_coherence
from copygen.copywriting.fragments import fragments
from copygen.copywriting.grounding import Evidence, risky_claims
from copygen.copywriting.harm import unsafe_words
from copygen.copywriting.language import languages_in, wrong_language
from copygen.copywriting.names import misspelt_names
from copygen.copywriting.subject import off_topic, relevance
from copygen.domain import Flag

#: The worth checks' flag types, in the order they run.
WORTH_FLAGS = (
    "off_topic",
    "misspelt_name",
    "fragment",
    "unsafe",
    "invented_claim",
    "incoherent",
    "wrong_language",
)


@dataclass(frozen=True, slots=True)
class Worth:
    """What the worth checks found in one text, and its two score parts (0..1):
    ``relevance`` (how anchored to the brief) and ``coherence``."""

    flags: tuple[Flag, ...]
    relevance: float
    coherence: float


#: The worth checks read this much of a text: more than any channel holds (LinkedIn's 3,000)
#: or a long product description's token budget writes. Each check is linear, but a dozen of
#: them over 40,000 characters of model output took 0.9 s on the event loop.
JUDGED_CHARS = 6000


def assess(text: str, evidence: Evidence, channel: str) -> Worth:
    """Every worth check on ``text`` (its first JUDGED_CHARS) for a brief (``evidence``) and a
    channel id."""
    text = text[:JUDGED_CHARS]
    wanted = evidence.language
    found = languages_in(text)
    others = tuple(language for language in found if language != wanted)
    written = found[0] if found else wanted  # the language most of the text is in
    flags = (
        *off_topic(text, evidence.subject, channel),
        *misspelt_names(text, evidence),
        *fragments(text, evidence),
        *unsafe_words(text, evidence, others),
        *invented_claims(text, evidence, others),
        *(
            flag
            for other in others
            for flag in risky_claims(text, replace(evidence, language=other))
        ),
        *incoherence(text, evidence, channel, written),
        *wrong_language(text, wanted),
    )
    return Worth(
        flags=tuple(dict.fromkeys(flags)),
        relevance=relevance(text, evidence.subject),
        coherence=measure_coherence(text, evidence, written).score,
    )
