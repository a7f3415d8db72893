"""The elementwise steps between a layer's projections for the fused forward pass (RMSNorm,
the residual add before it, SiLU(gate) × up): as torch operations, or on the CPU with RMSNorm
and the add + RMSNorm as one C++ pass each (kernels.cpp), built once with the system's C++
compiler into the model cache directory and loaded from there afterwards. SiLU × up stays a
torch operation: a C++ version was slower than torch's, whose exp is vectorised.

torch runs RMSNorm as eight operations with float32 temporaries: 4.6 ms for 1,536 rows × 576
in bf16 on two cores, where one pass over the rows takes ~0.2 ms. Without a compiler the torch
operations run, with a warning in the log; the results agree to the last bit of bf16 rounding
except where the sum of squares, added in another order, moves a value across a boundary.

Attention too (``attend``, and ``attend_lse`` with each query's log-sum-exp for
prefix_attention.py): PyTorch's CPU flash kernel, tuned for long query blocks, was a third of
a decoding step from 48 rows on; kernels.cpp's ``decode_attention`` computes the same in
float32 from bf16, 1.3-6.6x faster at the decoding call sites and at least as accurate
(docs/step-profile.md has the figures; bench/attention_bench.py measures them).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.cpp")


_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def flash(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``query`` [rows, heads, queries, dim] over ``keys``/``values`` [rows, heads,
    positions, dim] (``mask``: additive, broadcastable to [rows, 1, queries, positions]) and
    each query's log-sum-exp [rows, heads, queries] in float32: PyTorch's CPU flash kernel."""
    out, lse = _flash(query, keys, values, 0.0, False, attn_mask=mask, scale=scale)
    return out, lse


class TorchOps:
    """The steps as torch operations (any device)."""

    compiled = False
    #: Whether kernels.cpp's bf16 projection (``packed_linear``) is here (llama.KernelLinear).
    has_matmul = False

    def norm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), weight, eps)

    def add_norm(
        self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x + y`` and its RMSNorm."""
        total = x + y
        return total, self.norm(total, weight, eps)

    def silu_mul(self, gate_up: torch.Tensor) -> torch.Tensor:
        """SiLU of the first half of the last axis times the second half."""
        gate, up = gate_up.chunk(2, dim=-1)
        return F.silu(gate) * up

    def attend(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None,
        scale: float,
    ) -> torch.Tensor:
        """Attention of ``query`` [rows, heads, queries, dim] over ``keys``/``values`` [rows, kv
        heads, positions, dim], each KV head serving ``heads / kv heads`` query heads in turn;
        ``mask`` boolean (True: attend) or additive, broadcastable to [rows, 1, queries,
        positions]."""
        return F.scaled_dot_product_attention(
            query,
            keys,
            values,
            attn_mask=mask,
            scale=scale,
            enable_gqa=query.shape[1] != keys.shape[1],
        )

    def attend_lse(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None,
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``flash``: attention and each query's log-sum-exp (CPU tensors)."""
        return flash(query, keys, values, mask, scale)


class CompiledOps(TorchOps):
    """RMSNorm and add + RMSNorm as kernels.cpp's operators (CPU tensors, [rows, width]), and
    attention as its ``decode_attention`` where that was measured faster than PyTorch's
    flash kernel (``kernel_takes``, ``KERNEL_QUERIES``; docs/step-profile.md)."""

    compiled = True

    def __init__(self) -> None:
        # Built only where the compiler targets AVX-512 BF16 (kernels.cpp).
        self.has_matmul = hasattr(torch.ops.copygen, "packed_linear")

    def norm(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        out: torch.Tensor = torch.ops.copygen.rms_norm(x.contiguous(), weight, eps)
        return out

    def add_norm(
        self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        total, normed = torch.ops.copygen.add_rms_norm(x.contiguous(), y.contiguous(), weight, eps)
        return total, normed

    def attend(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None,
        scale: float,
    ) -> torch.Tensor:
        if not kernel_takes(query) or query.shape[2] > KERNEL_QUERIES:
            return super().attend(query, keys, values, mask, scale)
        out: torch.Tensor = torch.ops.copygen.decode_attention(query, keys, values, mask, scale)[0]
        return out

    def attend_lse(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None,
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not kernel_takes(query):  # a decoding step's (prefix_attention.py)
            return flash(query, keys, values, mask, scale)
        out, lse = torch.ops.copygen.decode_attention(query, keys, values, mask, scale)
        return out, lse


#: The most queries per row and head ``CompiledOps.attend`` gives the kernel; prefills of
#: longer prompts go to flash. Measured (bf16, 2 threads, masked, min of 40): 1.65x flash's
#: speed at 16 queries a head over 100 positions, 1.36x at 128 over 200, 1.10x at 256 over
#: 300, 1.04x at 512 over 600.
KERNEL_QUERIES = 256


def kernel_takes(query: torch.Tensor) -> bool:
    """Whether ``decode_attention`` runs for ``query``: bf16 on the CPU. float32 runs its
    plain loops, slower than flash from 5 queries a head on."""
    return query.dtype == torch.bfloat16 and query.device.type == "cpu"


def cpu_ops(cache_dir: Path) -> TorchOps:
    """The compiled operators, built under ``cache_dir`` (the model cache) on first use;
    torch's operations when they cannot be built here. A process loads them once."""
    if not registered():
        try:
            library = build(cache_dir / "kernels")
            torch.ops.load_library(str(library))  # type: ignore[no-untyped-call]
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("fused CPU kernels unavailable, using torch operations: %s", exc)
            return TorchOps()
    return CompiledOps()


def registered() -> bool:
    """Whether this process has loaded the operators already."""
    return hasattr(torch.ops.copygen, "rms_norm")


def build(build_root: Path) -> Path:
    """The shared library for this source, torch version, compiler command and CPU (it is
    compiled for the CPU it runs on), compiled if not there yet. Concurrent builds each
    write their own file and rename it into place."""
    torch_dir = Path(torch.__file__).parent
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    flags = [
        # No -ffast-math: linked into a library, GCC 12 would switch the whole process to
        # flushing denormals. The loops vectorise by their OpenMP simd pragmas. -fopenmp:
        # with torch's OpenMP backend at::parallel_for is an inline `omp parallel` region,
        # which without it ran on one thread; the library links the libgomp.so.1 torch has
        # loaded (its rpath is torch's lib folder), so both share one thread pool.
        "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fopenmp",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        "-isystem", str(torch_dir / "include"),
        "-isystem", str(torch_dir / "include" / "torch" / "csrc" / "api" / "include"),
        "-isystem", sysconfig.get_paths()["include"],
    ]  # fmt: skip
    libraries = [f"-L{torch_dir / 'lib'}", "-lc10", "-ltorch_cpu", "-ltorch",
                 f"-Wl,-rpath,{torch_dir / 'lib'}"]  # fmt: skip
    key = "\n".join([SOURCE.read_text(), torch.__version__, *flags, *libraries, _cpu_flags()])
    library = build_root / f"copygen-kernels-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"
    if library.exists():
        return library
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise OSError("no C++ compiler on the PATH")
    build_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=build_root, prefix=".kernels-") as scratch:
        partial = Path(scratch) / library.name
        command = [compiler, *flags, str(SOURCE), "-o", str(partial), *libraries]
        log.info("building the fused CPU kernels (once, ~15 s)")
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no output"]
            raise OSError(f"{Path(compiler).name} failed: {lines[-1][:300]}")
        partial.replace(library)
    return library


def _cpu_flags() -> str:
    """The CPU's model and instruction set extensions (Linux), else the machine name."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    wanted = ("model name", "flags", "Features")
    return "\n".join(sorted({line for line in info.splitlines() if line.startswith(wanted)}))
