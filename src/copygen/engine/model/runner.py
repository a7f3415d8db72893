"""The transformers runner: a thin façade over the model package. It loads the model (weights,
device, dtype, the fused forward when it can run it) into a ``LoadedModel`` and steps one
``DecodeBatch`` (continuous batching: rows join and leave between steps). Every method blocks;
the engine calls them from its one model thread.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from copygen.config_sections import ModelSection
from copygen.domain import ChatMessage, ScoreRequest
from copygen.engine.model import device as devices
from copygen.engine.model.batch import DecodeBatch
from copygen.engine.model.drafter import NgramDrafter
from copygen.engine.model.kernels import TorchOps, cpu_ops
from copygen.engine.model.llama import FusedLlama, check_fused, drop_projection_weights
from copygen.engine.model.loaded import LoadedModel
from copygen.engine.model.prefix import PrefixStore
from copygen.engine.model.prefix_attention import supported as splits_prefixes_on
from copygen.engine.model.scorer import score
from copygen.engine.model.weights import model_revision, resolve_model_source
from copygen.engine.protocols import RowSpec, RunnerInfo, RunnerOutOfMemory
from copygen.errors import ModelUnavailable
from copygen.generation import RowEvent, RowKey

log = logging.getLogger("copygen.runner")

#: Prompt tokens the prefix store may hold when prefix reuse is on.
PREFIX_BUDGET_TOKENS = 8192
#: Tokens of prompt continuations (a brief's message after its conversation prefix) kept for
#: the next round of the same brief: ~20 briefs' worth, ~35 MiB for the embedded model in
#: bf16, enough for the rounds of 16 concurrent users to find theirs.
CONTINUATION_BUDGET_TOKENS = 1536


class TransformersRunner:
    """Runs a causal LM with transformers (and copygen's fused forward for Llama models)."""

    @classmethod
    def of(cls, model: ModelSection) -> TransformersRunner:
        """The runner the settings' model section describes."""
        return cls(
            model.model,
            cache_dir=model.model_cache_dir,
            device=model.device,
            dtype=model.dtype,
            threads=model.torch_threads,
            prefix_cache=model.prefix_cache,
            fused_forward=model.fused_forward,
            speculative_tokens=model.speculative_tokens,
            speculative_shared=model.speculative_shared,
            speculative_sampled=model.speculative_sampled,
            prefix_attention=model.prefix_attention,
            cpu_kernels=model.cpu_kernels,
            cpu_matmul=model.cpu_matmul,
            continuation_cache=model.continuation_cache,
        )

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
        speculative_sampled: bool = False,
        prefix_attention: bool = True,
        cpu_kernels: bool = True,
        cpu_matmul: str = "auto",
        continuation_cache: bool = True,
    ) -> None:
        self.model_id = model_id
        self._cache_dir = cache_dir
        self._device_request = device
        self._dtype_request = dtype
        self._threads = threads
        self._fused_request = fused_forward
        self._speculative_tokens = speculative_tokens
        self._speculative_shared = speculative_shared
        self._speculative_sampled = speculative_sampled
        self._prefix_attention = prefix_attention
        self._cpu_kernels = cpu_kernels
        self._cpu_matmul = cpu_matmul
        self.info: RunnerInfo | None = None
        #: What the batch uses; None until ``load``.
        self.loaded: LoadedModel | None = None
        self.prefixes = PrefixStore(
            budget_tokens=PREFIX_BUDGET_TOKENS if prefix_cache else 0,
            continuation_budget_tokens=CONTINUATION_BUDGET_TOKENS if continuation_cache else 0,
        )
        self.drafter: NgramDrafter | None = None
        self._batch: DecodeBatch | None = None
        self._passes_before = 0  # forward passes of models replaced by a CPU fallback
        self._reused_before = 0  # prompt tokens reused by the stores a CPU fallback replaced
        self.revision = model_revision(model_id)

    # --- loading ------------------------------------------------------------------------

    def load(self) -> RunnerInfo:
        started = time.perf_counter()
        devices.tune_allocator()
        # oneDNN keeps 1024 primitives (JIT code, scratch buffers) per shape by default: every
        # prefill shape stays resident. 32 holds the decode working set; measured: 80 MiB less
        # RSS after the copy load, the same briefs/s.
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "32")
        if self._threads:
            torch.set_num_threads(self._threads)
        source, local = resolve_model_source(self.model_id, self._cache_dir)
        device = devices.resolve_device(self._device_request)
        devices.tune_attention(device)
        dtype = devices.resolve_dtype(self._dtype_request, device)
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
        self._install(model.to(device).eval(), tokenizer, device)
        assert self.loaded is not None
        self.info = RunnerInfo(
            model_id=self.model_id,
            device=str(device),
            dtype=str(dtype).removeprefix("torch."),
            load_seconds=round(time.perf_counter() - started, 3),
            chat_template=self.loaded.chat_template,
            forward=self.loaded.forward_name,
        )
        log.info("model loaded: %s", self.info)
        return self.info

    def fallback_to_cpu(self) -> RunnerInfo:
        """Move the model to the CPU (bf16 where the CPU has it, else fp32) and start over."""
        assert self.loaded is not None
        assert self.info is not None
        started = time.perf_counter()
        previous = self.loaded
        cpu = torch.device("cpu")
        dtype = devices.resolve_dtype("auto", cpu)
        self._passes_before += previous.forward_passes_total
        self._reused_before += self.prefixes.reused_tokens_total
        self.prefixes = PrefixStore(
            budget_tokens=self.prefixes.budget_tokens,
            continuation_budget_tokens=self.prefixes.continuation_budget_tokens,
        )
        self._install(previous.model.to(device=cpu, dtype=dtype), previous.tokenizer, cpu)
        devices.release_memory(previous.device)
        self.info = dataclasses.replace(
            self.info,
            device="cpu",
            dtype=str(dtype).removeprefix("torch."),
            load_seconds=round(time.perf_counter() - started, 3),
            forward=self.loaded.forward_name,
        )
        log.warning("model moved from %s to the CPU", previous.device)
        return self.info

    def _install(self, model: object, tokenizer: object, device: torch.device) -> None:
        """Build the loaded model (with the fused forward when it can run it) and the drafter
        (speculation needs the fused forward's logits at several positions); forget any
        running batch."""
        fused = None
        if self._fused_request:
            reason = check_fused(model, device)
            if reason is None:
                compiled = self._cpu_kernels and device.type == "cpu"
                ops = cpu_ops(self._cache_dir) if compiled else TorchOps()
                fused = FusedLlama(model, ops, matmul=self._cpu_matmul)
                amx = devices.onednn_uses_amx()
                log.info("fused forward: %s projections (COPYGEN_CPU_MATMUL=%s; oneDNN on "
                         "AMX: %s)", fused.matmul, self._cpu_matmul, amx)  # fmt: skip
                released = drop_projection_weights(model)
                log.info("fused forward: %d MiB of duplicate weights released", released >> 20)
            else:
                log.info("transformers' forward pass runs this model (fused forward: %s)", reason)
        self.loaded = LoadedModel(model, tokenizer, device, fused)
        self.drafter = (
            NgramDrafter(
                self._speculative_tokens,
                shared=self._speculative_shared,
                sampled=self._speculative_sampled,
            )
            if fused is not None and self._speculative_tokens > 0
            else None
        )
        self._batch = None

    # --- figures ------------------------------------------------------------------------

    @property
    def forward_passes_total(self) -> int:
        """Model forward calls so far (prefill and decode steps), for batching statistics."""
        current = self.loaded.forward_passes_total if self.loaded else 0
        return self._passes_before + current

    @property
    def reused_prompt_tokens_total(self) -> int:
        return self._reused_before + self.prefixes.reused_tokens_total

    @property
    def drafted_tokens_total(self) -> int:
        return self.drafter.drafted_total if self.drafter else 0

    @property
    def accepted_tokens_total(self) -> int:
        return self.drafter.accepted_total if self.drafter else 0

    @property
    def active_rows(self) -> int:
        return len(self._batch.rows) if self._batch else 0

    def device_stats(self) -> dict[str, float]:
        return devices.device_stats(self.loaded.device) if self.loaded else {}

    def release_memory(self) -> None:
        if self.loaded is not None:
            devices.release_memory(self.loaded.device)

    # --- decoding -----------------------------------------------------------------------

    def render(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text the model sees for ``messages``."""
        return self._model().render(messages)

    def reset(self) -> None:
        """Forget the running batch (after a failed step)."""
        self._batch = None

    def step(self, join: Sequence[RowSpec], drop: Collection[RowKey]) -> list[RowEvent]:
        """One iteration of continuous batching: drop rows, prefill joining rows into the
        running batch, then take every row's next tokens (one, or several when speculation
        guessed right) and run the next forward pass."""
        loaded = self._model()
        if self._batch is None:
            split = self._prefix_attention and loaded.fused is not None
            self._batch = DecodeBatch(
                loaded,
                self.prefixes,
                self.drafter,
                split_prefixes=split and splits_prefixes_on(loaded.device),
            )
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
            raise RunnerOutOfMemory(f"{loaded.device} out of memory") from exc

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """Mean log-probability per token of each text after its messages."""
        loaded = self._model()
        with torch.inference_mode():
            return score(loaded, requests, self.prefixes)

    def _model(self) -> LoadedModel:
        if self.loaded is None:
            raise ModelUnavailable("the model is not loaded")
        return self.loaded
