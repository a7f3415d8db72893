"""One brief across generation rounds, on plain data: the rules it is checked against, what
each round asks the model for, when its slots are filled, and the ranked result."""

from __future__ import annotations

from copygen.copywriting.channels import CHANNELS
from copygen.copywriting.rounds import MAX_ROWS_PER_BRIEF, OVERSAMPLE, BriefRounds
from copygen.domain import (
    BrandProfile,
    BrandVoice,
    Completion,
    CopyBrief,
    Generation,
)

BRIEF = CopyBrief(product="Solar charger", channel="sms", variants=2, keywords=("solar",), seed=5)
GOOD = (
    Completion("Solar power for your phone anywhere", 6, "stop"),
    Completion("Solar charger deals", 3, "stop"),
)
MISSING_KEYWORD = Completion("Charge your phone anywhere", 4, "stop")
BANNED = Completion("Solar charger is damn good", 5, "stop")


def _rounds(brief: CopyBrief = BRIEF) -> BriefRounds:
    return BriefRounds.new(brief, banned_always=("damn",))


def test_the_hard_rules_gather_the_briefs_the_servers_and_the_brands_words() -> None:
    acme = BrandVoice("br_1", 1, BrandProfile("Acme", forbidden_terms=("cheap",)))
    brief = CopyBrief(product="x", channel="sms", banned_words=("free",), brand=acme)
    assert BriefRounds.new(brief, ("damn",)).banned == ("free", "damn", "cheap")


def test_a_briefs_own_grounding_policy_wins_over_the_servers() -> None:
    assert BriefRounds.new(BRIEF, (), "flag").grounding == "flag"
    own = CopyBrief(product="x", grounding="off")
    assert BriefRounds.new(own, (), "flag").grounding == "off"


def test_round_one_samples_freely_with_spare_rows() -> None:
    request = _rounds().request(0)
    assert request.n == OVERSAMPLE * BRIEF.variants
    assert (request.prefix, request.sampling.seed) == ("", BRIEF.seed)
    assert request.single_line  # an SMS is one line: a row ends with it


def test_later_rounds_prime_a_keyword_ask_only_for_missing_slots_and_reseed() -> None:
    rounds = _rounds()
    rounds.absorb(Generation(12, (GOOD[0], MISSING_KEYWORD)))
    request = rounds.request(1)
    assert rounds.needed() == 1
    assert request.n == OVERSAMPLE * 1
    assert request.prefix == "Solar"  # capitalised to open the answer
    assert request.sampling.seed not in (None, BRIEF.seed)


def test_rows_per_brief_are_capped() -> None:
    many = CopyBrief(product="x", channel="sms", variants=10 * MAX_ROWS_PER_BRIEF)
    assert BriefRounds.new(many, ()).request(0).n == MAX_ROWS_PER_BRIEF


def test_a_row_stops_once_well_past_its_channels_character_limit() -> None:
    assert _rounds().request(0).max_chars == 160 + 80  # an SMS: 160 characters, half again
    headline = CopyBrief(product="x", channel="google_ads_headline")
    assert BriefRounds.new(headline, ()).request(0).max_chars == 30 + 20  # at least 20 more
    tight = CopyBrief(product="x", channel="sms", max_chars=60)
    assert BriefRounds.new(tight, ()).request(0).max_chars == 60 + 30  # the brief's own limit
    words = CopyBrief(product="x", channel="product_description")
    assert BriefRounds.new(words, ()).request(0).max_chars is None  # no character limit


def test_a_brief_without_a_temperature_samples_at_its_channels() -> None:
    headline = CopyBrief(product="x", channel="google_ads_headline")
    default = CHANNELS["google_ads_headline"].temperature
    assert BriefRounds.new(headline, ()).request(0).sampling.temperature == default
    own = CopyBrief(product="x", channel="google_ads_headline", temperature=1.1)
    assert BriefRounds.new(own, ()).request(0).sampling.temperature == 1.1
    assert BriefRounds.new(own, ()).request(2).sampling.temperature == 1.1


def test_judging_relevance_fails_what_lies_below_the_floor_under_strict_only() -> None:
    rounds = _rounds()
    rounds.absorb(Generation(12, GOOD))
    assert sorted(rounds.unscored()) == sorted(c.text for c in GOOD)
    rounds.judge({GOOD[0].text: 0.9, GOOD[1].text: 2.5}, floor=2.0)
    assert rounds.unscored() == []
    assert rounds.needed() == 1  # the first fell below the floor: its slot is open again
    [failed] = [c for c in rounds.checked if not c.acceptable]
    assert "off_topic" in failed.hard_failures
    flagging = BriefRounds.new(BRIEF, (), "flag")
    flagging.absorb(Generation(12, GOOD))
    flagging.judge({GOOD[0].text: 0.9}, floor=2.0)
    assert all(c.acceptable for c in flagging.checked)  # only strict throws copy away


def test_a_round_settles_once_its_finished_rows_fill_every_slot() -> None:
    rounds = _rounds()
    assert not rounds.settled([GOOD[0], MISSING_KEYWORD, BANNED])
    assert rounds.settled(list(GOOD))
    rounds.absorb(Generation(12, (GOOD[0],)))  # earlier rounds' variants count too
    assert rounds.settled([GOOD[1]])


def test_absorbing_counts_tokens_and_keeps_every_checked_candidate() -> None:
    rounds = _rounds()
    rounds.absorb(Generation(12, (*GOOD, MISSING_KEYWORD, BANNED)))
    rounds.absorb(Generation(12, ()))
    assert (rounds.prompt_tokens, rounds.completion_tokens) == (24, 18)
    assert rounds.needed() == 0
    # The banned candidate can never be returned, so it is not worth a relevance score.
    assert set(rounds.shortlist()) == {GOOD[0].text, GOOD[1].text, MISSING_KEYWORD.text}


def test_relevance_is_the_likelihood_the_brief_adds() -> None:
    rounds = _rounds()
    texts = ["a", "b"]
    pairs = rounds.scoring(texts)
    assert [p.text for p in pairs] == ["a", "a", "b", "b"]
    assert pairs[0].messages != pairs[1].messages  # with the brief, then the channel alone
    assert BriefRounds.relevance(texts, [-1.0, -3.0, -2.0, -1.5]) == {"a": 2.0, "b": -0.5}


def test_the_result_returns_the_best_variants_and_never_a_broken_one() -> None:
    rounds = _rounds()
    rounds.absorb(Generation(12, (BANNED, MISSING_KEYWORD, *GOOD)))
    rounds.relevance_of[GOOD[1].text] = 0.5
    result = rounds.result("fake/model", 1, {"total": 1.0}, (7,))
    texts = [v.text for v in result.variants]
    assert sorted(texts) == sorted(c.text for c in GOOD)
    assert result.requested == 2
    assert (result.model, result.channel, result.rounds, result.jobs) == (
        "fake/model",
        "sms",
        1,
        (7,),
    )
    assert result.usage.completion_tokens == 18
    relevance = {v.text: v.relevance for v in result.variants}
    assert relevance == {GOOD[0].text: None, GOOD[1].text: 0.5}


def test_a_brand_brief_carries_each_variants_voice_adjustment() -> None:
    acme = BrandVoice("br_1", 1, BrandProfile("Acme", preferred_terms=("deals",)))
    rounds = _rounds(CopyBrief(product="Solar charger", channel="sms", variants=2, brand=acme))
    rounds.absorb(Generation(12, GOOD))
    voices = {v.text: v.voice for v in rounds.result("m", 1, {}, ()).variants}
    assert voices == {GOOD[0].text: 0.0, GOOD[1].text: 0.05}


def test_a_title_starts_from_the_products_name_as_the_brief_spells_it() -> None:
    headline = BriefRounds.new(CopyBrief(product="FitTrack Pulse smart ring"), ())
    assert headline.request(0).prefix == "FitTrack Pulse"
    shop = BriefRounds.new(CopyBrief(product="canvas tote bag by Ember & Oak"), ())
    assert shop.request(0).prefix == "Ember & Oak"


def test_no_name_no_priming_and_long_copy_is_left_free() -> None:
    assert BriefRounds.new(CopyBrief(product="solar charger"), ()).request(0).prefix == ""
    post = CopyBrief(product="FitTrack Pulse smart ring", channel="linkedin_post")
    assert BriefRounds.new(post, ()).request(0).prefix == ""


def test_later_rounds_start_a_generic_products_title_with_its_head_noun() -> None:
    headphones = BriefRounds.new(
        CopyBrief(product="Noise-cancelling headphones", channel="google_ads_headline"), ()
    )
    assert headphones.request(0).prefix == ""  # the first round stays free
    assert headphones.request(1).prefix == "Headphones"  # two words: over half of 30
    charger = CopyBrief(product="Solar-powered phone charger", channel="google_ads_headline")
    assert BriefRounds.new(charger, ()).request(2).prefix == "Phone charger"
    named = CopyBrief(product="FitTrack Pulse ring", channel="google_ads_headline")
    assert BriefRounds.new(named, ()).request(1).prefix == "FitTrack Pulse"  # its name
    german = CopyBrief(product="leichter Wanderrucksack", channel="meta_headline", language="de")
    assert BriefRounds.new(german, ()).head_prefix() == ""  # English word order only
    sentence_start = CopyBrief(product="Cold brew coffee", channel="google_ads_headline")
    assert BriefRounds.new(sentence_start, ()).request(0).prefix == ""  # "Cold" is no name
    long_copy = CopyBrief(product="Noise-cancelling headphones", channel="sms")
    assert BriefRounds.new(long_copy, ()).request(1).prefix == ""


def test_a_keyword_still_primes_the_later_rounds() -> None:
    brief = CopyBrief(product="FitTrack Pulse smart ring", keywords=("sleep",))
    rounds = BriefRounds.new(brief, ())
    assert rounds.request(0).prefix == "FitTrack Pulse"
    assert rounds.request(1).prefix == "Sleep"


def test_a_start_that_only_repeats_what_was_kept_is_not_used_again() -> None:
    rounds = BriefRounds.new(CopyBrief(product="Online Spanish lessons"), ())
    assert rounds.request(0).prefix == "Online Spanish"
    same = Completion("Online Spanish Lessons", 3, "stop")
    rounds.absorb(Generation(12, (same, same, same)))
    assert rounds.needed() == 2
    assert rounds.request(1).prefix == "Online Spanish"  # it added a variant: still useful
    rounds.absorb(Generation(12, (same, same)))  # nothing new
    assert rounds.request(2).prefix == "Spanish lessons"  # the head noun instead
    rounds.absorb(Generation(12, (same,)))
    assert rounds.request(3).prefix == ""  # and then none


def test_a_row_that_wrote_nothing_after_its_primed_start_is_no_candidate() -> None:
    """ "Subscription" for "Cold brew coffee subscription": the model ended its answer at once.
    It fits and passes every check, so it was returned; it is no copy."""
    rounds = BriefRounds.new(CopyBrief(product="Cold brew coffee subscription", variants=2), ())
    rounds.request(0)
    first = Completion("Cold brew coffee subscription", 4, "stop")
    rounds.absorb(Generation(12, (first,)))
    assert rounds.request(1).prefix == "Subscription"
    bare = Completion("Subscription: The Perfect Cup of Coffee for Busy Parents", 9, "stop")
    assert not rounds.settled([bare])
    rounds.absorb(Generation(12, (bare, Completion("subscription", 1, "stop"))))
    assert [c.variant.text for c in rounds.checked] == [first.text]
    assert rounds.needed() == 1
    grown = Completion("Subscription cold brew, your way", 6, "stop")
    rounds.absorb(Generation(12, (grown,)))
    assert rounds.needed() == 0
