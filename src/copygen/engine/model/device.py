"""Where the model runs and in which precision: device and dtype resolution, the CPU's bf16
support, the accelerator's figures, and giving freed memory back (GPU cache, glibc heap)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

import torch

from copygen.errors import ModelUnavailable

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def cpu_supports_bf16() -> bool:
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("COPYGEN_DEVICE=cuda but no CUDA device is available")
    return torch.device(requested)


def tune_attention(device: torch.device) -> None:
    """Keep cuDNN's attention out of CUDA decoding. Its kernels plan a graph per shape, and
    a decoding batch's KV length changes every step: on an H200 each of a step's 30 attention
    calls spent 1.8 ms of CPU planning (53 of a 65 ms forward at 256 rows) for 0.05 ms of GPU
    work. PyTorch then picks the memory-efficient kernel, which takes the padding mask."""
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on GPUs and CPUs that support it, fp16 on older GPUs, else fp32."""
    if requested != "auto":
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def packs_bf16(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether bf16 weights can be prepacked for oneDNN on this CPU (see llama.Linear)."""
    ops = torch.ops.mkldnn
    return (
        dtype == torch.bfloat16
        and device.type == "cpu"
        and torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        and cpu_supports_bf16()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


#: ``ONEDNN_MAX_CPU_ISA`` values that leave oneDNN AMX's tiles (oneDNN's cpu_isa names).
AMX_ISAS = ("ALL", "DEFAULT", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX",
            "AVX10_1_512_AMX_FP16", "AVX10_2_512_AMX_2")  # fmt: skip


def onednn_uses_amx() -> bool:
    """Whether oneDNN's bf16 matmuls run on AMX here: the CPU has the tiles and neither
    ``ONEDNN_MAX_CPU_ISA`` nor its older name ``DNNL_MAX_CPU_ISA`` caps oneDNN below them."""
    if not bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()):
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL"
    return cap.strip().upper() in AMX_ISAS


def device_stats(device: torch.device) -> dict[str, float]:
    """Accelerator memory (and, with NVML, utilisation); empty on the CPU."""
    if device.type != "cuda":
        return {}
    index = device.index or 0
    stats = {
        "cuda_memory_allocated_bytes": float(torch.cuda.memory_allocated(index)),
        "cuda_memory_reserved_bytes": float(torch.cuda.memory_reserved(index)),
        "cuda_memory_total_bytes": float(torch.cuda.get_device_properties(index).total_memory),
    }
    with contextlib.suppress(Exception):  # needs NVML (pynvml); absent on many images
        stats["cuda_utilization_ratio"] = torch.cuda.utilization(index) / 100
    return stats


#: glibc's mallopt parameter for the mmap threshold.
M_MMAP_THRESHOLD = -3
#: Allocations from this size are mmap'd, so freeing them returns them to the OS at once.
MMAP_THRESHOLD_BYTES = 256 * 1024


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def tune_allocator() -> None:
    """glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after
    which KV buffers and activations come from the heap and stay in the process when freed:
    RSS only grows. A fixed threshold keeps them mmap'd (no-op without glibc)."""
    if _LIBC is not None:
        _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def release_memory(device: torch.device) -> None:
    """Return cached accelerator memory to the device, and the CPU heap's free pages to the
    OS (malloc_trim)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
