"""The copy workflow's own decisions on fake runners (its cache path is in
test_copywriter_cache.py): which generator writes each brief, what a cache key names besides
the brief, the fast path's L1 peek, and streaming callers that never share a generation."""

from __future__ import annotations

import asyncio
import threading

from copygen.cache.keys import copy_cache_key
from copygen.cache.tiered import build_cache
from copygen.config import Settings
from copygen.domain import CopyBrief, GenerationRequest
from copygen.engine.engine import Engine
from copygen.service.generators import Generators
from copygen.service.workflow import CopyWorkflow
from tests.builders import started_runtime
from tests.fakes import FakeRunner, spelled

BRIEF = CopyBrief(product="solar charger", channel="sms", variants=1, seed=1)
HEADLINE = CopyBrief(product="solar charger", channel="google_ads_headline", variants=1, seed=1)


def _on_topic(request: GenerationRequest, row: int) -> str:
    """Copy that names the product (continuing the name when the answer is primed with it)."""
    text = f"for every trail {spelled(row + 1)}"
    return f" {text}" if request.prefix else f"A solar charger {text}"


class _Routed(FakeRunner):
    model_id = "fake/routed"


def _workflow(default: FakeRunner, routed: FakeRunner, **settings: object) -> CopyWorkflow:
    """A workflow whose SMS briefs go to ``routed`` and the rest to ``default``."""
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    generators = Generators(Engine(config, default), {"sms": Engine(config, routed)})
    return CopyWorkflow(config, build_cache(config), generators)


async def test_each_brief_goes_to_the_generator_its_channel_is_routed_to() -> None:
    default, routed = FakeRunner(_on_topic), _Routed(_on_topic)
    workflow = _workflow(default, routed)
    for generator in workflow.generators.all:
        await generator.start()
    sms, headline = await workflow.generate_many([BRIEF, HEADLINE])
    assert (sms.model, headline.model) == ("fake/routed", "fake/model")
    assert [r.channel for r in (sms, headline)] == ["sms", "google_ads_headline"]
    assert [len(call) for call in routed.calls] == [1]  # only the SMS brief
    assert [len(call) for call in default.calls] == [1]  # only the headline
    for generator in workflow.generators.all:
        await generator.stop()


def test_a_cache_key_names_the_tenant_the_writing_model_and_the_servers_rules() -> None:
    def key(tenant: str = "a", brief: CopyBrief = BRIEF, **settings: object) -> str:
        workflow = _workflow(FakeRunner(), _Routed(), **settings)
        return copy_cache_key(brief, workflow.key_context(tenant, brief.channel))

    assert key() == key()
    assert key() != key("b")
    assert key() != key(max_rounds=1)  # other rules, other copy
    assert key() != key(brand_safety_words="cheap")
    workflow = _workflow(FakeRunner(), _Routed())
    assert workflow.key_context("a", "sms").model == "fake/routed"
    assert workflow.key_context("a", "google_ads_headline").model == "fake/model"


async def test_the_fast_path_peek_answers_only_from_l1_with_its_own_id() -> None:
    runtime = await started_runtime(FakeRunner(_on_topic))
    workflow = runtime.workflow
    assert workflow.from_l1(BRIEF, "a") is None
    written = await workflow.generate(BRIEF, tenant="a")
    peeked = workflow.from_l1(BRIEF, "a")
    assert peeked is not None
    assert (peeked.cached, peeked.cache_tier) == (True, "l1")
    assert peeked.id != written.id
    assert [v.text for v in peeked.variants] == [v.text for v in written.variants]
    assert peeked.usage.completion_tokens == 0
    assert workflow.from_l1(BRIEF, "b") is None  # another tenant's entry
    await runtime.stop()


async def test_a_streaming_caller_never_joins_a_generation_in_flight() -> None:
    hang = threading.Event()
    runner = FakeRunner(_on_topic, hang=hang)
    runtime = await started_runtime(runner)
    first = asyncio.create_task(runtime.workflow.generate(BRIEF))
    while not runner.joins:
        await asyncio.sleep(0.001)
    drafts: list[str] = []
    streamed = asyncio.create_task(
        runtime.workflow.generate(BRIEF, on_event=lambda rnd, event: drafts.append(event.delta))
    )
    await asyncio.sleep(0.02)
    hang.set()
    await asyncio.gather(first, streamed)
    assert len(runner.calls) == 2  # its own generation, so its drafts are its own
    assert drafts
    assert runtime.cache.flights.shared_total == 0
    await runtime.stop()
