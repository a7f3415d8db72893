"""Concurrent requests share forward passes through the engine, on a tiny real model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from copygen.config import Settings
from copygen.deadline import Deadline
from copygen.domain import ChatMessage, Generation, GenerationRequest, SamplingParams
from copygen.engine.engine import Engine
from copygen.engine.model.runner import TransformersRunner
from tests.tiny_model import WORDS, build_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-batching"), chat=False)


async def _engine(model_dir: Path, **settings: object) -> Engine:
    config = Settings(warmup=False, **settings)  # type: ignore[arg-type]
    runner = TransformersRunner(str(model_dir), cache_dir=model_dir, device="cpu", dtype="float32")
    engine = Engine(config, runner)
    await engine.start()
    return engine


@pytest.fixture
async def engine(model_dir: Path) -> AsyncIterator[Engine]:
    engine = await _engine(model_dir)
    yield engine
    await engine.stop()


async def generate(engine: Engine, requests: list[GenerationRequest]) -> list[Generation]:
    return (await engine.run(requests, Deadline.within(60))).generations


def _prompts(count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            messages=(ChatMessage("user", " ".join(WORDS[i % len(WORDS) :][: 2 + i % 5])),),
            sampling=SamplingParams(temperature=0.0, max_new_tokens=10),
        )
        for i in range(count)
    ]


async def test_concurrent_requests_share_forward_passes(engine: Engine) -> None:
    requests = _prompts(16)
    sequential = []
    before = engine.snapshot().figures.forward_passes
    for request in requests:
        [generation] = await generate(engine, [request])
        sequential.append(generation.completions[0].text)
    sequential_passes = engine.snapshot().figures.forward_passes - before

    before = engine.snapshot().figures.forward_passes
    results = await asyncio.gather(*(generate(engine, [r]) for r in requests))
    concurrent_passes = engine.snapshot().figures.forward_passes - before

    assert [g.completions[0].text for [g] in results] == sequential
    assert concurrent_passes * 4 < sequential_passes
    assert engine.snapshot().figures.max_batch_rows >= 8


async def test_static_batching_matches_too(model_dir: Path) -> None:
    engine = await _engine(model_dir, batching="static")
    try:
        requests = _prompts(6)
        expected = [(await generate(engine, [r]))[0].completions[0].text for r in requests]
        results = await asyncio.gather(*(generate(engine, [r]) for r in requests))
        assert [g.completions[0].text for [g] in results] == expected
    finally:
        await engine.stop()


async def test_streaming_deltas_concatenate_to_the_text(engine: Engine) -> None:
    request = _prompts(1)[0]
    [generation] = await generate(engine, [request])
    pieces = [event async for event in engine.open_stream([request], Deadline.within(60)).events()]
    assert len(pieces) > 1
    assert "".join(event.delta for event in pieces) == generation.completions[0].text
    assert pieces[-1].finish_reason in ("stop", "length")
