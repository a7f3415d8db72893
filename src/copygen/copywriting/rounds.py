"""One brief's candidates across generation rounds: what to ask the model for next (only the
slots still missing a variant that passes every rule), every checked candidate so far, and the
ranked result. Pure: the copywriter (service/copywriter.py) runs the rounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from copygen.copywriting.brand import voice_adjustment
from copygen.copywriting.channels import CHANNELS, Channel
from copygen.copywriting.grounding import Evidence
from copygen.copywriting.lexicon import is_common_word
from copygen.copywriting.postprocess import Checked, check_completion
from copygen.copywriting.prompts import relevance_prompts, render_prompt
from copygen.copywriting.ranking import deduplicate, select
from copygen.copywriting.steering import Steering
from copygen.copywriting.subject import ANCHORING, Anchoring
from copygen.domain import (
    ChatMessage,
    Completion,
    CopyBrief,
    CopyResult,
    Generation,
    GenerationRequest,
    Grounding,
    SamplingParams,
    ScoreRequest,
    Usage,
    new_copy_id,
)

#: Rows sampled per brief and round: enough spares that a few failures still fill the slots.
OVERSAMPLE = 2
MAX_ROWS_PER_BRIEF = 20
#: Candidates per wanted variant that get a relevance score (all that pass every rule, when
#: more do).
RELEVANCE_SHORTLIST = 2
#: A row stops once its text is this much past the channel's limit (half the limit, at least
#: CAP_SLACK_CHARS): repair can still cut it back to a clause or phrase within the limit, and
#: anything longer is rejected, so decoding on is wasted work.
CAP_SLACK_CHARS = 20
_SEED_STRIDE = 1_000_003
_UNANCHORED = Anchoring("none")


@dataclass(slots=True)
class BriefRounds:
    """One brief's progress across rounds: every checked candidate so far."""

    brief: CopyBrief
    channel: Channel
    banned: tuple[str, ...]
    messages: tuple[ChatMessage, ...]
    evidence: Evidence
    grounding: Grounding
    #: What every row of this brief avoids (copywriting/steering.py).
    steering: Steering = Steering()
    checked: list[Checked] = field(default_factory=list)
    #: Each completion's check, kept from ``settled`` for ``absorb``.
    _checks: dict[Completion, Checked | None] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Text → relevance, for the candidates a round's gate scored (service/rounds.py).
    relevance_of: dict[str, float] = field(default_factory=dict)
    #: Answer starts whose last round added no new variant that passes (all its rows wrote
    #: what was already kept: "Online Spanish" gives "Online Spanish Lessons" every time),
    #: so later rounds start otherwise.
    spent_prefixes: set[str] = field(default_factory=set)
    #: Distinct candidates passing every rule that round 1 looks for, to return the
    #: ``brief.variants`` best of them, which the likelihood the model gave each decides
    #: (service/rounds.py widens it while the engine has room: docs/quality.md,
    #: "Selection"); at most ``brief.variants`` means no choice.
    pool: int = 0
    _prefix: str = ""
    #: How many distinct passing candidates the current round's rows look for.
    _target: int = 0

    @classmethod
    def new(
        cls,
        brief: CopyBrief,
        banned_always: tuple[str, ...],
        grounding: Grounding = "strict",
        *,
        steering: bool = True,
    ) -> BriefRounds:
        """``grounding`` is the server's policy, for briefs that do not name one; without
        ``steering`` rows sample what the checks reject too."""
        brand = brief.brand.profile if brief.brand else None
        # Its name, preferred terms and facts are what the copy may say about it.
        evidence = Evidence.of(
            brief, (brand.name, *brand.preferred_terms, *brand.facts) if brand else ()
        )
        policy = brief.grounding or grounding
        return cls(
            brief=brief,
            channel=CHANNELS[brief.channel],
            # A brand's forbidden terms are a hard rule, like the brief's banned words.
            banned=(*brief.banned_words, *banned_always, *(brand.forbidden_terms if brand else ())),
            messages=render_prompt(brief),
            evidence=evidence,
            grounding=policy,
            steering=Steering.of(evidence, policy) if steering else Steering(),
        )

    @staticmethod
    def rows_for(wanted: int) -> int:
        """Rows a round samples to find ``wanted`` passing candidates."""
        return min(MAX_ROWS_PER_BRIEF, OVERSAMPLE * wanted)

    def needed(self) -> int:
        """Slots still missing a variant that passes every rule."""
        return self._missing(self.checked, self.brief.variants)

    def _missing(self, checked: Sequence[Checked], wanted: int) -> int:
        perfect = deduplicate(c.variant for c in checked if c.perfect)
        return max(0, wanted - len(perfect))

    def settled(self, finished: Sequence[Completion]) -> bool:
        """Whether this round's rows finished so far already fill every slot (with what
        earlier rounds kept), so its other rows need not run. The engine asks after each
        decoding step in which one of them finished."""
        found = [c for completion in finished if (c := self._check(completion)) is not None]
        wanted = max(self._target, self.brief.variants)
        return self._missing([*self.checked, *found], wanted) == 0

    def _check(self, completion: Completion) -> Checked | None:
        """The checked candidate, or None for a row that wrote nothing: empty after cleaning,
        or, once cleaned, only the start the round primed it with ("Subscription: The Perfect
        Cup of Cold Brew", cut to fit a headline, left "Subscription" for "Cold brew coffee
        subscription": it passed every check, and an editor throws it away)."""
        if completion not in self._checks:
            checked = check_completion(
                completion.text,
                completion.finish_reason == "length",
                self.channel,
                self.brief.keywords,
                self.brief.max_chars,
                self.banned,
                evidence=self.evidence,
                grounding=self.grounding,
                language=self.brief.language,
            )
            if checked and self._prefix and _bare(checked.variant.text) == _bare(self._prefix):
                checked = None
            elif checked:
                checked = checked.with_likelihood(completion.logprob)
            self._checks[completion] = checked
        return self._checks[completion]

    def request(self, round_index: int) -> GenerationRequest:
        """Round 1 samples freely (unless the brief asks for ``prime_keywords``). Later rounds
        prime the answer with a required keyword (the model continues from it), since a
        missing keyword is the most common reason a small model's variant fails."""
        brief = self.brief
        seed = None
        if brief.seed is not None:
            seed = (brief.seed + round_index * _SEED_STRIDE) % 2**63
        prefix = ""
        primed = round_index + brief.prime_keywords  # primed from round 1, or from round 2
        if primed > 0 and brief.keywords:
            keyword = brief.keywords[(primed - 1) % len(brief.keywords)]
            prefix = keyword[:1].upper() + keyword[1:] if keyword.islower() else keyword
        elif primed == 0 or not brief.keywords:
            starts = (self.name_prefix(), self.head_prefix() if round_index else "")
            prefix = next((p for p in starts if p and p not in self.spent_prefixes), "")
        self._prefix = prefix
        # Round 1 looks for the whole pool; later rounds only fill the slots still empty.
        self._target = max(self.pool, brief.variants) if round_index == 0 else brief.variants
        return GenerationRequest(
            messages=self.messages,
            sampling=SamplingParams(
                temperature=self.temperature(),
                top_p=brief.top_p,
                top_k=brief.top_k,
                repetition_penalty=brief.repetition_penalty,
                max_new_tokens=brief.max_new_tokens or self.channel.max_new_tokens,
                seed=seed,
            ),
            n=self.rows_for(self._missing(self.checked, self._target)),
            prefix=prefix,
            # A one-line channel keeps only the first line: a row ends with it.
            single_line=self.channel.single_line,
            max_chars=self.row_char_cap(),
            avoid_words=self.steering.words,
            avoid_chars=self.steering.chars,
            # Slots left unfilled come back with the same messages and another start.
            again=True,
            # How likely the model found what it wrote ranks the candidates (ranking.merit).
            logprobs=True,
        )

    def temperature(self) -> float:
        """The brief's own temperature, else its channel's default. (Sampling later rounds
        warmer, +0.2 a round, was tried: the editors judged fewer variants usable.)"""
        own = self.brief.temperature
        return self.channel.temperature if own is None else own

    def row_char_cap(self) -> int | None:
        """Where a row of this brief stops (GenerationRequest.max_chars): past the limit by
        half of it, at least CAP_SLACK_CHARS; none for a channel without a character limit."""
        limit = self.brief.max_chars
        if limit is None and self.channel.counting != "words":
            limit = self.channel.limit
        return None if limit is None else limit + max(CAP_SLACK_CHARS, limit // 2)

    def head_prefix(self) -> str:
        """For an English title whose product has no short name to start with (name_prefix):
        the product's head noun (its last two words, or one when two take more than half the
        limit: "Phone charger", "Headphones"), to start a later round's rows with. Left free, a
        small model's titles for such a product drift off it; the first round stays free for
        variety."""
        if not self._names_product() or self.brief.language != "en":
            return ""
        words = self.brief.product.split()
        starts = (
            self._title_start(" ".join(words[-take:])) for take in (2, 1) if len(words) >= take
        )
        return next((start for start in starts if start), "")

    def name_prefix(self) -> str:
        """The product's name, spelled as the brief spells it, to start a title with (the
        model continues from it): a title must name the product (subject.ANCHORING), and a
        small model left to itself drifts off topic or re-spells the name. Empty for other
        channels, for a product without a proper name ("canvas tote bag"; "Solar-powered phone
        charger", whose capital only starts the sentence), or when the name would take more
        than half the title's limit."""
        if not self._names_product():
            return ""
        subject, product = self.evidence.subject, self.brief.product
        name = ""
        if subject.names and subject.phrases and _proper(subject.phrases[0]):
            # The first capitalised run of the product ("FitTrack Pulse", "Ember & Oak") as
            # the product writes it.
            first, last = subject.phrases[0][0], subject.phrases[0][-1]
            start, end = product.find(first), product.rfind(last)
            if 0 <= start <= end:
                name = product[start : end + len(last)]
        return self._title_start(name)

    def _names_product(self) -> bool:
        """Whether this brief's channel is a title that must name the product."""
        return ANCHORING.get(self.channel.id, _UNANCHORED).needs == "name"

    def _title_start(self, phrase: str) -> str:
        """``phrase`` capitalised, to start a title with; empty when there is none or it would
        take more than half the title's limit."""
        limit = self.brief.max_chars or self.channel.limit
        if not phrase or (limit is not None and len(phrase) > limit // 2):
            return ""
        return phrase[:1].upper() + phrase[1:]

    def absorb(self, generation: Generation) -> None:
        """Keep a round's checked candidates (``generation`` answers ``request``'s latest)."""
        missing = self.needed()
        self.prompt_tokens += generation.prompt_tokens
        for completion in generation.completions:
            self.completion_tokens += completion.completion_tokens
            if (checked := self._check(completion)) is not None:
                self.checked.append(checked)
        self._checks.clear()
        if self._prefix and self.needed() == missing:
            self.spent_prefixes.add(self._prefix)

    def unscored(self) -> list[str]:
        """The distinct texts of candidates that pass every rule and have no relevance yet:
        what a round's relevance gate scores."""
        pool = deduplicate(c.variant for c in self.checked if c.perfect)
        return [v.text for v in pool if v.text not in self.relevance_of]

    def judge(self, relevance: Mapping[str, float], floor: float) -> None:
        """Keep ``relevance`` (text → nats per token) and, under strict grounding, fail every
        candidate whose text scored below ``floor`` (this round or an earlier one) as
        off_topic: the brief hardly makes the model likelier to write it, so it is about
        something else or says nothing (docs/quality.md, "Relevance floor"). Its slot is then
        regenerated like any other failure."""
        self.relevance_of.update(relevance)
        if self.grounding != "strict":
            return
        self.checked = [
            c.failing("off_topic")
            if self.relevance_of.get(c.variant.text, floor) < floor and c.acceptable
            else c
            for c in self.checked
        ]

    def shortlist(self) -> list[str]:
        """The distinct returnable texts worth a relevance score: every one that passes every
        rule, then others, best score first, up to twice as many as wanted."""
        perfect = deduplicate(c.variant for c in self.checked if c.perfect)
        rest = deduplicate((c.variant for c in self.checked if c.acceptable), keep=perfect)
        room = max(0, RELEVANCE_SHORTLIST * self.brief.variants - len(perfect))
        return [v.text for v in (*perfect, *rest[:room])]

    def scoring(self, texts: Sequence[str]) -> list[ScoreRequest]:
        """For each text: its likelihood given the brief, then given the brief's channel
        alone (relevance is the difference)."""
        with_brief, neutral = relevance_prompts(self.brief)
        return [ScoreRequest(m, text) for text in texts for m in (with_brief, neutral)]

    @staticmethod
    def relevance(texts: Sequence[str], scores: Sequence[float]) -> dict[str, float]:
        """Text → relevance, from the scores of ``scoring(texts)`` (in its order)."""
        return {text: scores[2 * i] - scores[2 * i + 1] for i, text in enumerate(texts)}

    def result(
        self,
        model_id: str,
        rounds: int,
        timings: dict[str, float],
        jobs: tuple[int, ...],
    ) -> CopyResult:
        """The ranked result; ``relevance_of`` (text → how much the brief raises its
        likelihood, in nats per token) joins the ranking where measured."""
        checked = self.checked
        if relevance := self.relevance_of:
            checked = [c.with_relevance(relevance.get(c.variant.text)) for c in checked]
        if (brand := self.brief.brand) is not None:
            checked = [c.with_voice(voice_adjustment(c.variant.text, brand)) for c in checked]
        return CopyResult(
            id=new_copy_id(),
            model=model_id,
            channel=self.channel.id,
            variants=select(checked, self.brief.variants),
            requested=self.brief.variants,
            rounds=rounds,
            usage=Usage(self.prompt_tokens, self.completion_tokens),
            timings_ms=dict(timings),
            jobs=jobs,
        )


def _proper(phrase: Sequence[str]) -> bool:
    """Whether a capitalised run of words is a name: a word past the first is capitalised
    ("Blue Heron", "Online Spanish") or a word is no ordinary word ("FitTrack"); a run of
    common words whose first capital only starts the product ("Solar-powered", "Cold") is
    none."""
    return any(word[:1].isupper() for word in phrase[1:]) or not all(
        is_common_word(word) for word in phrase
    )


def _bare(text: str) -> str:
    """``text`` without case, surrounding space and trailing punctuation."""
    return text.strip().rstrip(".!?,;:").strip().casefold()
