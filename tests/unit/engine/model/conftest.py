"""The compiled CPU kernels (kernels.cpp), built once per session for the tests that use them."""

from __future__ import annotations

import shutil

import pytest
import torch

from copygen.engine.model.kernels import CompiledOps, cpu_ops

COMPILER = shutil.which("c++") or shutil.which("g++")


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledOps:
    if COMPILER is None:
        pytest.skip("no C++ compiler on the PATH (the torch fallback tests still run)")
    ops = cpu_ops(tmp_path_factory.mktemp("cache"))
    assert isinstance(ops, CompiledOps), "a compiler is here, so the kernels must build"
    return ops


@pytest.fixture
def decode_calls(compiled: CompiledOps, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one per call of the decode-attention operator during the test."""
    calls: list[int] = []
    kernel = torch.ops.copygen.decode_attention

    def counting(*args: object) -> object:
        calls.append(1)
        return kernel(*args)

    monkeypatch.setattr(torch.ops.copygen, "decode_attention", counting)
    return calls
