import shutil
from pathlib import Path

import pytest
import torch

from copygen.engine.model import kernels
from copygen.engine.model.kernels import CompiledOps, TorchOps, cpu_ops

COMPILER = shutil.which("c++") or shutil.which("g++")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> CompiledOps:
    if COMPILER is None:
        pytest.skip("no C++ compiler on the PATH (the fallback test below still runs)")
    ops = cpu_ops(tmp_path_factory.mktemp("cache"))
    assert isinstance(ops, CompiledOps), "a compiler is here, so the kernels must build"
    return ops


def _rows(rows: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, 576, generator=generator) * 3).to(dtype)


@pytest.mark.parametrize("rows", [1, 7, 300])
def test_kernels_compute_what_torch_computes(compiled: CompiledOps, rows: int) -> None:
    """float32 to rounding; bf16 rounds the same float32 value, so at most a rare last-bit
    difference where the sum of squares, added in another order, moves a value across a
    rounding boundary."""
    for dtype in (torch.float32, torch.bfloat16):
        x, y, weight = _rows(rows, dtype, 1), _rows(rows, dtype, 2), _rows(1, dtype, 3)[0]
        expected_sum, expected = TorchOps().add_norm(x, y, weight, 1e-5)
        total, normed = compiled.add_norm(x, y, weight, 1e-5)
        alone = compiled.norm(x, weight, 1e-5)
        assert torch.equal(total, expected_sum)
        pairs = ((normed, expected), (alone, TorchOps().norm(x, weight, 1e-5)))
        for got, want in pairs:
            if dtype == torch.float32:
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            else:
                torch.testing.assert_close(got.float(), want.float(), rtol=2**-7, atol=1e-6)
                assert (got != want).float().mean() < 1e-3


def test_a_strided_input_is_read_as_its_values(compiled: CompiledOps) -> None:
    x = _rows(8, torch.bfloat16, 4)[:, :288].repeat(1, 2)[::2]  # every other row
    weight = _rows(1, torch.bfloat16, 5)[0]
    torch.testing.assert_close(
        compiled.norm(x, weight, 1e-5).float(), TorchOps().norm(x, weight, 1e-5).float(),
        rtol=2**-7, atol=1e-6,
    )  # fmt: skip


def test_the_operators_refuse_what_they_cannot_compute(compiled: CompiledOps) -> None:
    weight = torch.ones(576)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        torch.ops.copygen.rms_norm(torch.ones(2, 576, dtype=torch.float64), weight, 1e-5)
    with pytest.raises(RuntimeError, match="width"):
        torch.ops.copygen.rms_norm(torch.ones(2, 576), torch.ones(5), 1e-5)
    with pytest.raises(RuntimeError, match="one shape"):
        torch.ops.copygen.add_rms_norm(torch.ones(2, 576), torch.ones(3, 576), weight, 1e-5)


@pytest.mark.parametrize("compiler", ["no-such-compiler", "/bin/false"])
def test_without_a_working_compiler_torch_runs_the_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiler: str
) -> None:
    monkeypatch.setattr(kernels, "registered", lambda: False)
    monkeypatch.setenv("CXX", str(tmp_path / compiler) if "/" not in compiler else compiler)
    ops = cpu_ops(tmp_path)
    assert type(ops) is TorchOps
    assert not ops.compiled
    assert not list((tmp_path / "kernels").glob("*.so"))


def test_a_built_library_is_reused(compiled: CompiledOps, tmp_path: Path) -> None:
    first = kernels.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert kernels.build(tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
