"""copygen's own forward pass for Llama-architecture models (CPU and CUDA)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from copygen.engine.model.device import onednn_uses_amx, packs_bf16
from copygen.engine.model.kernels import TorchOps
from copygen.engine.model.kv import KVCache
from copygen.engine.model.prefix_attention import PrefixAttention, additive


def check_fused(model: Any, device: torch.device) -> str | None:
    """Why the fused forward cannot run this model (None: it can)."""
    config = model.config
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    checks = {
        # CUDA measured on an H200 (bench/gpu_bench.py, docs/benchmarks.md): greedy tokens
        # identical to transformers' forward on 32 of 32 rows, 727 vs 577 tok/s at 64 rows.
        "only measured on CPUs and CUDA": device.type in ("cpu", "cuda"),
        "not a Llama-architecture model": getattr(config, "model_type", None) == "llama",
        "projection biases": not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False),
        "activation other than silu": getattr(config, "hidden_act", None) == "silu",
        "tensor-parallel pretraining layout": getattr(config, "pretraining_tp", 1) == 1,
        "rope scaling other than the default": rope.get("rope_type", "default") == "default",
    }
    failed = [reason for reason, ok in checks.items() if not ok]
    return ", ".join(failed) if failed else None


class Linear:
    """y = x @ W.T without bias, x of shape [rows, in]: torch's matmul, the weight as given."""

    __slots__ = ("weight",)

    #: Whether the projection pads its rows up to ``bucket`` sizes (``FusedLlama.rows_for``).
    buckets = False

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight.detach().contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class OneDNNLinear(Linear):
    """For bf16 on a CPU with oneDNN the weight is reordered once into oneDNN's blocked layout:
    a plain bf16 matmul re-lays the weight out on every call, which made every projection of a
    decoding step 1.7-2x slower.

    oneDNN builds and keeps a kernel per row count (~0.6 MiB each per weight shape, measured):
    with every batch size and prefill length its own, the server's RSS grew by hundreds of MiB
    under load and stayed there. So the packed path runs 31 row counts at most (``bucket``:
    rows padded up, at most ``CHUNK_ROWS`` per call). Building them all at load was measured
    too: 8% slower decoding steps at 96 rows afterwards (reason unknown), so they are built
    as they come.
    """

    __slots__ = ()

    buckets = True
    #: Rows the blocked layout is tuned for; any other row count still computes correctly.
    PACK_ROWS = 16
    #: The most rows one packed call takes; more run in parts.
    CHUNK_ROWS = 256

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__(weight)
        self.weight = torch.ops.mkldnn._reorder_linear_weight(self.weight, self.PACK_ROWS)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        if rows > self.CHUNK_ROWS:
            chunk = self.CHUNK_ROWS
            return torch.cat([self(x[start : start + chunk]) for start in range(0, rows, chunk)])
        size = bucket(rows)
        if size != rows:
            x = F.pad(x, (0, 0, 0, size - rows))
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(x, self.weight, None, "none", [], "")
        return out if size == rows else out[:rows]


class KernelLinear(Linear):
    """kernels.cpp's bf16 projection (``packed_linear``, AVX-512 BF16 CPUs): the weight packed
    once into panels that stream through memory once per call. Without AMX it is what a
    decoding step at a few rows needs (bound by reading the weights). One step's projections
    of the 135M model, 2 cores, AVX-512 BF16 without AMX, against oneDNN's prepacked bf16
    (bench/matmul_bench.py, ms): 7.1 vs 14.1 at 1 row, 8.0 vs 14.2 at 6, 15.0 vs 18.6 at 16,
    37.6 vs 44.6 at 48, 67.0 vs 73.5 at 96, 172 vs 176 at 256. Any row count runs as
    itself: no buckets, no kernel kept per row count."""

    __slots__ = ("out_features",)

    def __init__(self, weight: torch.Tensor) -> None:
        self.out_features = weight.shape[0]
        self.weight = torch.ops.copygen.pack_linear(weight.detach())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.copygen.packed_linear(x, self.weight, self.out_features)
        return out


#: The projection each matmul choice builds (``choose_matmul``).
LINEARS: dict[str, type[Linear]] = {
    "torch": Linear,
    "onednn": OneDNNLinear,
    "kernel": KernelLinear,
}


def choose_matmul(requested: str, dtype: torch.dtype, device: torch.device, ops: TorchOps) -> str:
    """Which projection runs the fused forward: ``requested`` ("auto", "onednn" or "kernel")
    where this CPU, dtype and build can run it. auto: kernels.cpp's on CPUs where oneDNN has
    no AMX to use (AMX's bf16 tiles beat it from ~48 rows on and match it below), else
    oneDNN's prepacked weights where bf16 allows, else torch's matmul."""
    kernel = ops.has_matmul and dtype == torch.bfloat16 and device.type == "cpu"
    onednn = packs_bf16(dtype, device)
    if requested == "kernel" and kernel:
        return "kernel"
    if requested == "auto" and kernel and not onednn_uses_amx():
        return "kernel"
    return "onednn" if onednn else "torch"


def bucket(rows: int) -> int:
    """The row count a oneDNN projection runs ``rows`` (≤ CHUNK_ROWS) as: itself up to 16
    (the common decode batches; padding 6 rows to 8 measured ~10% slower), then the next
    multiple of 16."""
    return rows if rows <= 16 else -(-rows // 16) * 16


@dataclass(frozen=True, slots=True)
class FusedLayer:
    attn_norm: torch.Tensor
    qkv: Linear
    out: Linear
    mlp_norm: torch.Tensor
    gate_up: Linear
    down: Linear


class FusedLlama:
    """The forward pass of a Llama-architecture model as a short sequence of tensor operations
    per layer, without transformers' module machinery (hooks, mask and cache objects), with
    q/k/v and gate/up fused into one projection each and, for bf16 on CPUs, prepacked weights
    (``choose_matmul``). On two cores a decoding step is bound by the matmuls and
    per-operation dispatch; measured in the runner: 53 ms → 35 ms per step at 16 rows, 61 → 45
    ms at 32 (bf16).

    It writes each layer's new keys and values through the same ``update`` of kv.py's layers
    as transformers' forward does, so prefix reuse, joins and row removal work unchanged.
    Positions and padding come in explicitly; a padded query position also attends to itself,
    so no row is masked out entirely (that would make NaNs that leak into later layers through
    the KV cache).
    """

    def __init__(self, model: Any, ops: TorchOps | None = None, matmul: str = "auto") -> None:
        """``ops``: how the steps between the projections run (kernels.py); torch's
        operations by default. ``matmul``: the projections' choice (``choose_matmul``)."""
        config = model.config
        self.ops = ops or TorchOps()
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
        #: Which projection runs (a key of ``LINEARS``).
        self.matmul = choose_matmul(matmul, self.embed.dtype, self.embed.device, self.ops)
        linear = LINEARS[self.matmul]
        self.layers = []
        for block in inner.layers:
            attn, mlp = block.self_attn, block.mlp
            qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
            gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
            self.layers.append(
                FusedLayer(
                    attn_norm=block.input_layernorm.weight,
                    qkv=linear(qkv),
                    out=linear(attn.o_proj.weight),
                    mlp_norm=block.post_attention_layernorm.weight,
                    gate_up=linear(gate_up),
                    down=linear(mlp.down_proj.weight),
                )
            )
        self.lm_head = linear(model.lm_head.weight)

    def rows_for(self, tokens: int) -> int:
        """Rows of the residual stream for ``tokens`` positions: what oneDNN's projections run
        them as (``bucket``, per part of at most ``CHUNK_ROWS``), else ``tokens``."""
        if not LINEARS[self.matmul].buckets:
            return tokens
        whole, rest = divmod(tokens, OneDNNLinear.CHUNK_ROWS)
        return whole * OneDNNLinear.CHUNK_ROWS + (bucket(rest) if rest else 0)

    def __call__(
        self,
        kv: KVCache,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        select: torch.Tensor | None = None,
        prefix: PrefixAttention | None = None,
    ) -> torch.Tensor:
        """Logits of each row's last position, or of the ``select``ed positions of the
        flattened [rows * new] input; ``attention_mask`` spans the cached positions and the
        new ones. With ``prefix``, the cache holds what follows each row's stored prefix and
        attention covers both (prefix_attention.py)."""
        rows, new = input_ids.shape
        heads, kv_heads, dim, width = self.heads, self.kv_heads, self.head_dim, self.hidden
        half = dim // 2
        x = F.embedding(input_ids, self.embed)
        cos, sin = self.rotary(x, position_ids)
        cos = cos[:, :, None, :]
        # rotate_half(t) * sin == roll(t, half) * [-sin, sin] over the last axis.
        sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)[:, :, None, :]
        # The residual stream carries zero rows up to the projections' row count (``bucket``),
        # so each layer pads once (attention's output) rather than before every projection;
        # the zero rows stay zero and no row reads another.
        tokens = rows * new
        x = _padded(x.view(tokens, width), self.rows_for(tokens))
        mask = attention_mask_for(attention_mask, new)
        group = heads // kv_heads
        if prefix is not None:
            # the grouped queries below are (query head in group, new position), group outer
            mask = additive(mask if new == 1 else mask.repeat(1, 1, group, 1), x.dtype)
        layers = zip(self.layers, kv.layers_for(len(self.layers)), strict=True)
        ops, eps = self.ops, self.eps
        # Each layer's MLP output is added to the residual stream by the next layer's norm.
        pending: torch.Tensor | None = None
        for index, (layer, kv_layer) in enumerate(layers):
            if pending is None:
                h = ops.norm(x, layer.attn_norm, eps)
            else:
                x, h = ops.add_norm(x, pending, layer.attn_norm, eps)
            qkv = layer.qkv(h)[:tokens].view(rows, new, heads + 2 * kv_heads, dim)
            qk = qkv[:, :, : heads + kv_heads]
            qk = torch.addcmul(qk * cos, qk.roll(half, dims=-1), sin)
            keys, values = kv_layer.update(
                qk[:, :, heads:].transpose(1, 2), qkv[:, :, heads + kv_heads :].transpose(1, 2)
            )
            if prefix is not None:
                q = qk[:, :, :heads].transpose(1, 2).reshape(rows, kv_heads, group * new, dim)
                attended = prefix.attend(
                    index, q, keys, values, mask, self.scale, attention=ops.attend_lse
                )
                if new > 1:
                    grouped = attended.reshape(rows, kv_heads, group, new, dim)
                    attended = grouped.permute(0, 3, 1, 2, 4)
            elif new == 1:
                # The query heads that share a KV head become that head's query rows.
                q = qk[:, 0, :heads].reshape(rows, kv_heads, group, dim)
                attended = ops.attend(q, keys, values, mask, self.scale)
            else:
                q = qk[:, :, :heads].transpose(1, 2)
                attended = ops.attend(q, keys, values, mask, self.scale).transpose(1, 2)
            projected = layer.out(_padded(attended.reshape(tokens, heads * dim), x.shape[0]))
            x, h = ops.add_norm(x, projected, layer.mlp_norm, eps)
            pending = layer.down(ops.silu_mul(layer.gate_up(h)))
        if pending is not None:
            x = x + pending
        last = x[:tokens].view(rows, new, width)[:, -1] if select is None else x[select]
        logits: torch.Tensor = self.lm_head(ops.norm(last, self.norm, eps))
        return logits


def _padded(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``x`` with zero rows appended up to ``rows``."""
    return x if x.shape[0] == rows else F.pad(x, (0, 0, 0, rows - x.shape[0]))


#: The projections FusedLlama keeps its own copies of (fused, and prepacked on bf16 CPUs).
PROJECTIONS = (
    ("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"),
    ("self_attn", "o_proj"), ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj"),
)  # fmt: skip


def drop_projection_weights(model: Any) -> int:
    """Free the decoder projections' weights of a model that only FusedLlama runs from now on
    (it holds its own copies): without this every weight is held twice. Bytes released."""
    released = 0
    for block in model.model.layers:
        for part, name in PROJECTIONS:
            projection = getattr(getattr(block, part), name)
            weight = projection.weight
            released += weight.numel() * weight.element_size()
            projection.weight = torch.nn.Parameter(
                torch.empty(0, dtype=weight.dtype, device=weight.device), requires_grad=False
            )
    return released


def attention_mask_for(padding: torch.Tensor, new: int) -> torch.Tensor:
    """Boolean mask [rows, 1, new, total]: the unpadded earlier positions of each row, and
    always the query position itself."""
    keep = padding.bool()[:, None, None, :]
    if new == 1:
        return keep
    total = padding.shape[1]
    keys = torch.arange(total, device=padding.device)[None, :]
    queries = torch.arange(total - new, total, device=padding.device)[:, None]
    return (keep & (keys <= queries)) | (keys == queries)
