"""Asset sets written by the copy workflow on a fake runner: every part generated together,
parts of no variants skipped, the same brief giving the same set, and a set stored as a job's
result and read back."""

from __future__ import annotations

import dataclasses

from copygen.copywriting.assets import AssetChecks
from copygen.domain import CachePolicy, CopyBrief, Usage, Variant
from copygen.service.assets import AssetSet, asset_from_dict, asset_to_dict, google_rsa, meta_ad
from tests.builders import started_runtime
from tests.fakes import FakeRunner
from tests.unit.api.test_assets import reply

BRIEF = CopyBrief(product="Solar phone charger", keywords=("solar",), audience="hikers")


def test_a_set_reads_back_from_its_stored_form_unchanged() -> None:
    variant = Variant("Solar on the go", 15, 30, True, (), 0.8)
    made = AssetSet(
        id="copy-1",
        model="fake/model",
        parts={"headlines": [variant], "descriptions": []},
        checks=AssetChecks(True, True, 1, 0, 0, ("cta_headline",)),
        pins=[1],
        usage=Usage(10, 4),
        timings_ms={"total": 12.5},
        cached=False,
    )
    stored = asset_to_dict(made)
    assert stored["checks"]["failures"] == ["cta_headline"]  # JSON-ready: a list
    assert asset_from_dict(stored) == made


async def test_every_part_of_a_meta_set_is_generated_in_one_shared_call() -> None:
    runner = FakeRunner(reply)
    runtime = await started_runtime(runner)
    made = await meta_ad(runtime.workflow, BRIEF, 2, 3, 0)
    assert len(runner.calls[0]) == 2  # the two parts together; no brief for the empty one
    assert [len(made.parts[p]) for p in ("primary_texts", "headlines", "descriptions")] == [2, 3, 0]
    assert made.pins == [None, None, None]
    assert made.usage.completion_tokens > 0
    assert made.checks.passed, made.checks.failures
    await runtime.stop()


async def test_the_same_brief_gives_the_same_set_and_bypass_a_new_one() -> None:
    runner = FakeRunner(reply)
    runtime = await started_runtime(runner)
    first, paths = await google_rsa(runtime.workflow, BRIEF, 6, 2, ("", ""))
    again, same_paths = await google_rsa(runtime.workflow, BRIEF, 6, 2, ("", ""))
    assert again.cached
    assert (again.parts, same_paths) == (first.parts, paths)
    assert all(paths)  # none given: two were written
    fresh = dataclasses.replace(BRIEF, cache=CachePolicy.BYPASS)
    other, _ = await google_rsa(runtime.workflow, fresh, 6, 2, ("", ""))
    assert not other.cached
    assert [v.text for v in other.parts["headlines"]] != [v.text for v in first.parts["headlines"]]
    await runtime.stop()


async def test_given_display_paths_are_kept_and_not_generated() -> None:
    runner = FakeRunner(reply)
    runtime = await started_runtime(runner)
    made, paths = await google_rsa(runtime.workflow, BRIEF, 4, 2, ("Solar", ""))
    assert paths == ("Solar", "")
    assert made.parts["paths"] == []
    assert len(made.parts["headlines"]) == 4
    assert made.pins.count(1) == 1
    await runtime.stop()
