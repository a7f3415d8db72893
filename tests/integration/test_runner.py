"""The transformers runner on a tiny random-weight model built from a config (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
from copygen.engine.runner import TransformersRunner, resolve_device, resolve_dtype

WORDS = [
    "the",
    "a",
    "sun",
    "power",
    "charge",
    "phone",
    "hike",
    "trail",
    "go",
    "now",
    "fast",
    "solar",
    "light",
    "day",
    "night",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def _build_tiny_model(directory: Path, *, chat: bool) -> Path:
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, "<s>": 3}
    for word in WORDS + ["<system>", "<user>", "<assistant>"]:
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>"
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=3,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> TransformersRunner:
    directory = _build_tiny_model(tmp_path_factory.mktemp("tiny"), chat=False)
    runner = TransformersRunner(str(directory), cache_dir=directory, device="cpu", dtype="float32")
    runner.load()
    return runner


def _request(text: str, n: int = 1, **sampling: float | int | None) -> GenerationRequest:
    params = SamplingParams(**{"max_new_tokens": 8, **sampling})  # type: ignore[arg-type]
    return GenerationRequest(messages=(ChatMessage("user", text),), sampling=params, n=n)


def test_load_reports_device_and_dtype(runner: TransformersRunner) -> None:
    assert runner.info is not None
    assert runner.info.device == "cpu"
    assert runner.info.dtype == "float32"
    assert runner.info.chat_template is False


def test_plain_prompt_without_a_chat_template(runner: TransformersRunner) -> None:
    rendered = runner.render([ChatMessage("system", "go fast"), ChatMessage("user", "sun day")])
    assert rendered == "go fast\n\nsun day\n\n"


def test_batched_generation_returns_one_result_per_prompt(runner: TransformersRunner) -> None:
    requests = [
        _request("sun", n=2),
        _request("the solar phone charge trail go now fast", n=3),
        _request("hike", n=1, temperature=0.0),
    ]
    generations = runner.generate(requests)
    assert [len(g.completions) for g in generations] == [2, 3, 1]
    assert [g.prompt_tokens for g in generations] == [1, 8, 1]
    for generation in generations:
        for completion in generation.completions:
            assert 1 <= completion.completion_tokens <= 8
            assert completion.finish_reason in ("stop", "length")


def test_left_padding_does_not_change_greedy_output(runner: TransformersRunner) -> None:
    short = _request("sun power", temperature=0.0)
    long = _request("the solar phone charge trail go now fast light day", temperature=0.0)
    alone = runner.generate([short])[0].completions[0].text
    batched = runner.generate([short, long])[0].completions[0].text
    assert alone == batched


def test_seed_makes_sampling_reproducible(runner: TransformersRunner) -> None:
    def sample(seed: int) -> list[str]:
        request = _request("sun", n=3, temperature=1.0, top_k=0, top_p=1.0, seed=seed)
        return [c.text for c in runner.generate([request])[0].completions]

    assert sample(11) == sample(11)
    assert sample(11) != sample(12)


def test_chat_template_is_used_when_present(tmp_path: Path) -> None:
    directory = _build_tiny_model(tmp_path, chat=True)
    runner = TransformersRunner(str(directory), cache_dir=tmp_path, device="cpu", dtype="auto")
    info = runner.load()
    assert info.chat_template is True
    assert runner.render([ChatMessage("user", "sun")]) == "<user>sun</s><assistant>"
    [generation] = runner.generate([_request("sun", n=2)])
    assert len(generation.completions) == 2


def test_device_and_dtype_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    cpu = torch.device("cpu")
    assert resolve_dtype("float16", cpu) is torch.float16
    assert resolve_dtype("auto", cpu) in (torch.bfloat16, torch.float32)
