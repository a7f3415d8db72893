"""Cache keys: equivalent requests share a key, any meaningful difference changes it."""

from __future__ import annotations

import json
import random
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from copygen.api.schemas import CopyRequest
from copygen.cache.keys import KeyContext, copy_cache_key, key_pattern
from copygen.copywriting.channels import CHANNELS

CONTEXT = KeyContext(tenant="t1", model="m", revision="r1")

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40
).filter(lambda s: s.strip() == s and s.strip())

briefs = st.fixed_dictionaries(
    {"product": texts},
    optional={
        "description": texts,
        "audience": texts,
        "tone": st.sampled_from(["friendly", "bold", "luxury"]),
        "channel": st.sampled_from(sorted(CHANNELS)),
        "keywords": st.lists(st.sampled_from(["solar", "fast", "eco", "free"]), max_size=4),
        "variants": st.integers(1, 10),
        "temperature": st.sampled_from([0.0, 0.5, 0.7, 1.2]),
        "top_k": st.integers(0, 100),
        "seed": st.integers(0, 2**40),
    },
)


def key_of(body: dict[str, object] | str, context: KeyContext = CONTEXT) -> str:
    if isinstance(body, str):
        request = CopyRequest.model_validate_json(body)
    else:
        request = CopyRequest.model_validate(body)
    return copy_cache_key(request.to_brief(), context)


@settings(max_examples=150, deadline=None)
@given(briefs, st.randoms())
def test_field_order_does_not_change_the_key(body: dict[str, object], rnd: random.Random) -> None:
    items = list(body.items())
    rnd.shuffle(items)
    assert key_of(dict(items)) == key_of(body)


@settings(max_examples=100, deadline=None)
@given(briefs)
def test_defaults_sent_explicitly_equal_defaults_omitted(body: dict[str, object]) -> None:
    explicit = CopyRequest.model_validate(body).model_dump(exclude={"stream"})
    assert key_of(explicit) == key_of(body)


@settings(max_examples=100, deadline=None)
@given(briefs, st.sampled_from(["use", "refresh", "bypass"]), st.booleans())
def test_the_cache_policy_and_stream_flag_are_not_part_of_the_key(
    body: dict[str, object], policy: str, stream: bool
) -> None:
    assert key_of({**body, "cache": policy, "stream": stream}) == key_of(body)


def test_equivalent_numbers_and_unicode_forms_share_a_key() -> None:
    assert key_of('{"product": "x", "temperature": 0.70}') == key_of(
        '{"product": "x", "temperature": 0.7}'
    )
    # Naming the channel's default temperature is the same brief as naming none.
    default = CHANNELS["sms"].temperature
    assert key_of(f'{{"product": "x", "channel": "sms", "temperature": {default}}}') == key_of(
        '{"product": "x", "channel": "sms"}'
    )
    assert key_of('{"product": "x", "top_k": 50}') == key_of('{"product": "x"}')
    composed = unicodedata.normalize("NFC", "Café crème")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert key_of({"product": decomposed}) == key_of({"product": composed})
    assert key_of({"product": "x", "keywords": ["a", "b"]}) == key_of(
        {"product": "x", "keywords": ["b", "a", "a"]}
    )
    # The channel's default token budget sent explicitly is the same request.
    budget = CHANNELS["sms"].max_new_tokens
    assert key_of({"product": "x", "channel": "sms"}) == key_of(
        {"product": "x", "channel": "sms", "max_new_tokens": budget}
    )


MEANINGFUL = [
    ("product", "y"),
    ("description", "other"),
    ("audience", "teens"),
    ("tone", "bold"),
    ("channel", "sms"),
    ("framework", "aida"),
    ("keywords", ["solar"]),
    ("banned_words", ["cheap"]),
    ("language", "de"),
    ("variants", 4),
    ("max_chars", 20),
    ("temperature", 0.71),
    ("top_p", 0.5),
    ("top_k", 7),
    ("repetition_penalty", 1.2),
    ("max_new_tokens", 9),
    ("seed", 1),
    ("facts", ["holds a charge for 24 hours"]),
    ("grounding", "flag"),
    ("tone", "quirky but professional"),
]


def test_every_meaningful_change_changes_the_key() -> None:
    base = key_of({"product": "x"})
    keys = {key_of({"product": "x", field: value}) for field, value in MEANINGFUL}
    assert base not in keys
    assert len(keys) == len(MEANINGFUL)


def test_tenant_model_revision_and_policy_are_part_of_the_key() -> None:
    body = {"product": "x"}
    variants = [
        KeyContext("t2", "m", "r1"),
        KeyContext("t1", "other", "r1"),
        KeyContext("t1", "m", "r2"),
        KeyContext("t1", "m", "r1", policy="rounds=1"),
    ]
    keys = {key_of(body, context) for context in variants}
    assert len(keys) == len(variants)
    assert key_of(body) not in keys


def test_keys_hold_no_brief_text_and_match_their_invalidation_patterns() -> None:
    from fnmatch import fnmatchcase

    key = key_of({"product": "Secret launch", "channel": "sms"})
    assert "Secret" not in key
    assert fnmatchcase(key, key_pattern())
    assert fnmatchcase(key, key_pattern(model="m", channel="sms"))
    assert not fnmatchcase(key, key_pattern(channel="email_subject"))
    assert not fnmatchcase(key, key_pattern(model="other"))
    json.dumps(key)  # plain ASCII text


def test_facts_in_another_order_make_another_prompt_and_key() -> None:
    one = key_of({"product": "x", "facts": ["a fact", "another fact"]})
    assert one != key_of({"product": "x", "facts": ["another fact", "a fact"]})
    assert one == key_of({"product": "x", "facts": ["a fact", "another fact"]})
