from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from copygen.engine.model import kernels
from copygen.engine.model.kernels import CompiledOps, TorchOps, cpu_ops, flash


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


# --- decode attention ---------------------------------------------------------------------

#: rows, query heads, kv heads, queries per head, positions, head dim
SHAPES = [
    (6, 3, 3, 3, 30, 64),  # a decoding step's grouped queries (SmolLM2-135M's head dim)
    (5, 9, 3, 5, 47, 64),  # query heads sharing KV heads, 5 new positions (speculation)
    (1, 3, 3, 290, 170, 64),  # the rows' queries stacked against one prefix
    (4, 4, 2, 3, 9, 8),  # a head dim without the fast path (the generic loops)
]


def _attention_case(
    shape: tuple[int, ...], dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """query, keys, values (views into larger tensors, as the KV cache hands them out) and a
    keep-mask [rows, 1, queries, positions] with left padding, one query masked entirely."""
    rows, heads, kv_heads, queries, positions, dim = shape
    generator = torch.Generator().manual_seed(seed)
    query = torch.randn(rows, queries, heads, dim, generator=generator).to(dtype).transpose(1, 2)
    buffer = (torch.randn(2, rows, kv_heads, positions + 7, dim, generator=generator) * 2).to(dtype)
    keys, values = buffer[0, :, :, :positions], buffer[1, :, :, :positions]
    starts = torch.randint(0, positions // 2, (rows, 1, 1, 1), generator=generator)
    keep = (torch.arange(positions) >= starts).expand(rows, 1, queries, positions).clone()
    keep[-1, 0, queries // 2] = False
    return query, keys, values, keep


def _reference(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, keep: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention and log-sum-exp in float64 (a fully masked query: zeros and 0, as flash)."""
    group = query.shape[1] // keys.shape[1]
    keys = keys.double().repeat_interleave(group, 1)
    values = values.double().repeat_interleave(group, 1)
    scores = query.double() @ keys.transpose(-1, -2) * query.shape[-1] ** -0.5
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ values, lse.nan_to_num(0.0, neginf=0.0)


def _flash(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    group = query.shape[1] // keys.shape[1]
    keys, values = keys.repeat_interleave(group, 1), values.repeat_interleave(group, 1)
    return flash(query, keys, values, mask, query.shape[-1] ** -0.5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_decode_attention_is_flash_attention_at_least_as_accurate(
    compiled: CompiledOps, shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    """Out [rows, heads, queries, dim] in the input dtype and the log-sum-exp [rows, heads,
    queries] in float32 laid out as flash's; against float64 no larger errors than
    flash's (bf16 flash rounds the softmax weights to bf16, the kernel keeps them float)."""
    query, keys, values, keep = _attention_case(shape, dtype, seed=sum(shape))
    additive = torch.zeros(keep.shape, dtype=dtype).masked_fill(~keep, float("-inf"))
    expected, expected_lse = _reference(query, keys, values, keep)
    theirs, theirs_lse = _flash(query, keys, values, additive)
    scale = shape[-1] ** -0.5
    for mask in (additive, keep, additive.float()):
        out, lse = torch.ops.copygen.decode_attention(query, keys, values, mask, scale)
        assert (out.shape, out.dtype) == (theirs.shape, dtype)
        assert out.is_contiguous()  # flash's follows the query's layout
        assert (lse.shape, lse.dtype) == (theirs_lse.shape, torch.float32)
        assert lse.stride() == theirs_lse.stride()
        error, their_error = (out.double() - expected).abs(), (theirs.double() - expected).abs()
        torch.testing.assert_close(lse.double(), expected_lse, rtol=0, atol=2e-5)
        if dtype == torch.bfloat16:
            assert error.max() <= their_error.max()
            assert error.mean() <= their_error.mean()
            torch.testing.assert_close(out.float(), theirs.float(), rtol=2**-6, atol=2**-6)
        else:
            torch.testing.assert_close(out.double(), expected, rtol=4e-6, atol=2e-6)
            torch.testing.assert_close(out, theirs, rtol=4e-6, atol=4e-6)
    # the masked-out query: zeros and a log-sum-exp of 0, as from flash
    masked = (-1, slice(None), shape[3] // 2)
    for tensor in (out, theirs, lse, theirs_lse):
        assert not tensor[masked].any()


def test_decode_attention_without_a_mask_attends_every_position(compiled: CompiledOps) -> None:
    query, keys, values, _ = _attention_case((2, 6, 3, 3, 20, 64), torch.bfloat16, seed=3)
    out, lse = torch.ops.copygen.decode_attention(query, keys, values, None, 0.125)
    theirs = F.scaled_dot_product_attention(
        query.double(), keys.double(), values.double(), scale=0.125, enable_gqa=True
    )
    torch.testing.assert_close(out.double(), theirs, rtol=2**-7, atol=1e-3)
    assert lse.shape == (2, 6, 3)


def test_compiled_attention_runs_the_kernel_for_decoding_steps_only(
    compiled: CompiledOps, decode_calls: list[int]
) -> None:
    """bf16 with a decoding step's few queries per head; anything else as torch runs it."""
    for queries, dtype, runs in [
        (3, torch.bfloat16, True),
        (kernels.KERNEL_QUERIES + 1, torch.bfloat16, False),
        (3, torch.float32, False),
    ]:
        decode_calls.clear()
        query, keys, values, keep = _attention_case((2, 6, 3, queries, 20, 64), dtype, seed=4)
        out = compiled.attend(query, keys, values, keep, 0.125)
        torch.testing.assert_close(
            out.float(), TorchOps().attend(query, keys, values, keep, 0.125).float(),
            rtol=2**-6, atol=2**-6,
        )  # fmt: skip
        assert bool(decode_calls) is runs


def test_decode_attention_refuses_what_it_cannot_compute(compiled: CompiledOps) -> None:
    query, keys = torch.ones(1, 3, 1, 64), torch.ones(1, 3, 5, 64)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        torch.ops.copygen.decode_attention(query.double(), keys.double(), keys.double(), None, 1.0)
    with pytest.raises(RuntimeError, match="multiple of the kv heads"):
        torch.ops.copygen.decode_attention(query, keys[:, :2], keys[:, :2], None, 1.0)
    with pytest.raises(RuntimeError, match="one dtype"):
        torch.ops.copygen.decode_attention(query, keys.bfloat16(), keys, None, 1.0)
    mask = torch.zeros(1, 1, 1, 5, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="mask must be"):
        torch.ops.copygen.decode_attention(query, keys, keys, mask, 1.0)


# --- bf16 projections -----------------------------------------------------------------------


@pytest.fixture
def matmul(compiled: CompiledOps) -> CompiledOps:
    if not compiled.has_matmul:
        pytest.skip("no AVX-512 BF16 here: the projection kernel is not built")
    return compiled


def _weights(out: int, inputs: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(out, inputs, generator=generator) * 0.05).to(torch.bfloat16)


@pytest.mark.parametrize(("out", "inputs"), [(960, 576), (100, 64), (17, 1536)])
@pytest.mark.parametrize("rows", [1, 5, 6, 7, 13, 50, 97])
def test_the_projection_kernel_computes_the_matmul(
    matmul: CompiledOps, out: int, inputs: int, rows: int
) -> None:
    """To bf16 rounding of the float32 product (each result is rounded once), like oneDNN's;
    column counts that fill no whole panel and row counts off every tile included."""
    weight, x = _weights(out, inputs, 1), _weights(rows, inputs, 2) * 20
    got = torch.ops.copygen.packed_linear(x, torch.ops.copygen.pack_linear(weight), out)
    expected = x.float() @ weight.float().T
    assert got.shape == (rows, out)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=2**-7, atol=1e-3)


def test_a_row_gets_the_same_bits_whatever_shares_its_call(matmul: CompiledOps) -> None:
    """Each row is summed alone in one order: a brief's row does not change with the batch."""
    weight, x = _weights(576, 1536, 3), _weights(40, 1536, 4) * 20
    packed = torch.ops.copygen.pack_linear(weight)
    whole = torch.ops.copygen.packed_linear(x, packed, 576)
    for start, stop in ((0, 1), (3, 9), (11, 40)):
        alone = torch.ops.copygen.packed_linear(x[start:stop], packed, 576)
        assert torch.equal(alone, whole[start:stop])


def test_the_projection_kernel_reads_strided_rows_and_no_rows(matmul: CompiledOps) -> None:
    weight = _weights(64, 128, 5)
    packed = torch.ops.copygen.pack_linear(weight)
    wide = _weights(9, 256, 6)
    x = wide[:, 64:192]  # every row 256 apart
    assert torch.equal(
        torch.ops.copygen.packed_linear(x, packed, 64),
        torch.ops.copygen.packed_linear(x.contiguous(), packed, 64),
    )
    empty = torch.ops.copygen.packed_linear(wide[:0, :128], packed, 64)
    assert empty.shape == (0, 64)


def test_the_projection_kernel_refuses_what_it_cannot_compute(matmul: CompiledOps) -> None:
    packed = torch.ops.copygen.pack_linear(_weights(64, 128, 7))
    with pytest.raises(RuntimeError, match="even"):
        torch.ops.copygen.pack_linear(_weights(64, 127, 7))
    with pytest.raises(RuntimeError, match="bfloat16"):
        torch.ops.copygen.pack_linear(torch.ones(64, 128))
    with pytest.raises(RuntimeError, match="features"):
        torch.ops.copygen.packed_linear(_weights(2, 64, 8), packed, 64)
    with pytest.raises(RuntimeError, match="out_features"):
        torch.ops.copygen.packed_linear(_weights(2, 128, 8), packed, 65)
    with pytest.raises(RuntimeError, match="bfloat16"):
        torch.ops.copygen.packed_linear(torch.ones(2, 128), packed, 64)
