"""The transformers runner on a tiny random-weight model built from a config (no network)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from copygen.domain import ChatMessage, GenerationRequest, SamplingParams
from copygen.engine.model.batch import DecodeBatch
from copygen.engine.model.device import resolve_device, resolve_dtype
from copygen.engine.model.kv import KVCache
from copygen.engine.model.llama import FusedLlama
from copygen.engine.model.prefix_attention import PrefixAttention
from copygen.engine.model.runner import TransformersRunner
from copygen.engine.protocols import RowSpec
from copygen.generation import RowEvent
from tests.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), chat=False)


@pytest.fixture(scope="module")
def runner(tiny: Path) -> TransformersRunner:
    runner = TransformersRunner(str(tiny), cache_dir=tiny, device="cpu", dtype="float32")
    runner.load()
    return runner


def _reference(directory: Path) -> Any:
    """The same weights as transformers loads them, for comparisons: the runner's own model
    gave its projection weights up to the fused forward."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def reference(tiny: Path) -> Any:
    return _reference(tiny)


def _greedy_reference(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> str:
    """What transformers' own ``generate`` answers to the rendered ``prompt``, greedy, up to
    the end of the turn."""
    encoded = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    new = output[0, encoded["input_ids"].shape[1] :].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
    return str(tokenizer.decode(new, skip_special_tokens=True))


def _chat_runner(tmp_path: Path) -> tuple[TransformersRunner, Path]:
    """A loaded runner of a fresh tiny chat model with the default stores (prefix_cache off),
    and the model's directory."""
    directory = build_tiny_model(tmp_path, chat=True)
    runner = TransformersRunner(
        str(directory), cache_dir=tmp_path, device="cpu", dtype="float32", prefix_cache=False
    )
    runner.load()
    return runner, directory


def test_the_fused_runner_holds_each_weight_once(runner: TransformersRunner) -> None:
    assert runner.loaded is not None
    assert runner.loaded.fused is not None
    for block in runner.loaded.model.model.layers:
        assert block.self_attn.q_proj.weight.numel() == 0
        assert block.mlp.down_proj.weight.numel() == 0


def _request(text: str, n: int = 1, **sampling: float | int | None) -> GenerationRequest:
    params = SamplingParams(**{"max_new_tokens": 8, **sampling})  # type: ignore[arg-type]
    return GenerationRequest(messages=(ChatMessage("user", text),), sampling=params, n=n)


def run(
    runner: TransformersRunner,
    requests: list[GenerationRequest],
    *,
    join_at: dict[int, int] | None = None,
) -> list[list[str]]:
    """Decode to the end; request i joins at step ``join_at[i]`` (default: the first)."""
    return [[e.text for e in events] for events in run_events(runner, requests, join_at=join_at)]


def run_events(
    runner: TransformersRunner,
    requests: list[GenerationRequest],
    *,
    join_at: dict[int, int] | None = None,
) -> list[list[RowEvent]]:
    """Like ``run``, but each row's final event."""
    join_at = join_at or {}
    texts: dict[tuple[int, int], RowEvent] = {}
    pending = {
        (0, i, row): RowSpec((0, i, row), request, (request.sampling.seed or 0) + row)
        for i, request in enumerate(requests)
        for row in range(request.n)
    }
    step = 0
    while pending or runner.active_rows:
        join = [spec for key, spec in pending.items() if join_at.get(key[1], 0) <= step]
        for spec in join:
            del pending[spec.key]
        for event in runner.step(join, ()):
            if event.finish_reason:
                texts[event.key[1:]] = event
        step += 1
        assert step < 1000
    return [[texts[(i, row)] for row in range(r.n)] for i, r in enumerate(requests)]


def test_load_reports_device_and_dtype(runner: TransformersRunner) -> None:
    assert runner.info is not None
    assert runner.info.device == "cpu"
    assert runner.info.dtype == "float32"
    assert runner.info.chat_template is False


def test_plain_prompt_without_a_chat_template(runner: TransformersRunner) -> None:
    rendered = runner.render([ChatMessage("system", "go fast"), ChatMessage("user", "sun day")])
    assert rendered == "go fast\n\nsun day\n\n"


def test_every_row_of_every_prompt_comes_back(runner: TransformersRunner) -> None:
    requests = [
        _request("sun", n=2),
        _request("the solar phone charge trail go now fast", n=3),
        _request("hike", n=1, temperature=0.0),
    ]
    results = run(runner, requests)
    assert [len(r) for r in results] == [2, 3, 1]
    assert runner.active_rows == 0


def test_left_padding_does_not_change_greedy_output(runner: TransformersRunner) -> None:
    short = _request("sun power", temperature=0.0)
    long = _request("the solar phone charge trail go now fast light day", temperature=0.0)
    alone = run(runner, [short])[0]
    assert run(runner, [short, long])[0] == alone
    assert run(runner, [long, short])[1] == alone


def test_rows_joining_a_running_batch_decode_as_if_alone(runner: TransformersRunner) -> None:
    requests = [
        _request("the solar phone charge trail go now fast light day", temperature=0.0),
        _request("sun", temperature=0.0, max_new_tokens=12),
        _request("hike trail night", temperature=0.0, max_new_tokens=4),
    ]
    alone = [run(runner, [request])[0] for request in requests]
    assert run(runner, requests, join_at={0: 0, 1: 3, 2: 5}) == alone
    assert run(runner, requests, join_at={0: 6, 1: 0, 2: 2}) == alone


def test_seed_makes_sampling_reproducible_whatever_shares_the_batch(
    runner: TransformersRunner,
) -> None:
    seeded = _request("sun", n=3, temperature=1.0, top_k=0, top_p=1.0, seed=11)
    noise = _request("phone charge", n=4, temperature=1.0, seed=99)
    alone = run(runner, [seeded])[0]
    assert run(runner, [noise, seeded])[1] == alone
    assert run(runner, [seeded], join_at={0: 0})[0] == alone
    other = _request("sun", n=3, temperature=1.0, top_k=0, top_p=1.0, seed=12)
    assert run(runner, [other])[0] != alone


def test_rows_with_different_sampling_share_a_step(runner: TransformersRunner) -> None:
    before = runner.forward_passes_total
    requests = [
        _request("sun", temperature=0.0, max_new_tokens=6),
        _request("sun", temperature=1.2, top_k=5, repetition_penalty=1.5, max_new_tokens=6),
    ]
    run(runner, requests)
    # one prefill for the shared prompt text + at most 5 decode steps
    assert runner.forward_passes_total - before <= 6


def test_prefix_primes_the_answer_and_stop_strings_end_it(runner: TransformersRunner) -> None:
    primed = GenerationRequest(
        messages=(ChatMessage("user", "sun"),),
        sampling=SamplingParams(temperature=0.0, max_new_tokens=6),
        prefix="Solar",
    )
    [[text]] = run(runner, [primed])
    assert text.startswith("Solar")
    greedy = run(runner, [_request("sun", temperature=0.0, max_new_tokens=8)])[0][0]
    words = greedy.split()
    if len(words) >= 3:
        stop = " " + words[2]
        stopped = GenerationRequest(
            messages=(ChatMessage("user", "sun"),),
            sampling=SamplingParams(temperature=0.0, max_new_tokens=8),
            stop=(stop,),
        )
        [[cut]] = run(runner, [stopped])
        assert cut == greedy[: greedy.find(stop)]


def test_chat_template_is_used_when_present(tmp_path: Path) -> None:
    directory = build_tiny_model(tmp_path, chat=True)
    runner = TransformersRunner(str(directory), cache_dir=tmp_path, device="cpu", dtype="auto")
    info = runner.load()
    assert info.chat_template is True
    assert runner.render([ChatMessage("user", "sun")]) == "<user>sun</s><assistant>"
    assert len(run(runner, [_request("sun", n=2)])[0]) == 2


def test_device_and_dtype_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    cpu = torch.device("cpu")
    assert resolve_dtype("float16", cpu) is torch.float16
    assert resolve_dtype("auto", cpu) in (torch.bfloat16, torch.float32)


def test_shared_prefixes_are_prefilled_once_and_change_nothing(tmp_path: Path) -> None:
    directory = build_tiny_model(tmp_path, chat=False)
    fresh = TransformersRunner(str(directory), cache_dir=tmp_path, device="cpu", dtype="float32")
    fresh.load()
    base = "the solar phone charge trail go now fast light day night"
    requests = [_request(base + tail, temperature=0.0) for tail in (" sun", " hike", " a sun")]
    expected = []
    for request in requests:  # each decoded by a runner that has seen none of the others
        alone = TransformersRunner(
            str(directory), cache_dir=tmp_path, device="cpu", dtype="float32"
        )
        alone.load()
        expected.append(run(alone, [request])[0])
    assert [run(fresh, [request])[0] for request in requests] == expected
    store = fresh.prefixes
    assert store.reused_tokens_total >= 2 * 11  # the 11 shared words came from the store
    assert run(fresh, requests, join_at={0: 0, 1: 0, 2: 3}) == expected


def test_greedy_decoding_matches_transformers_generate(
    runner: TransformersRunner, reference: Any
) -> None:
    """The own decoding loop (growing KV buffer, joins, fan-out) against the reference."""
    assert runner.loaded is not None
    model, tokenizer = reference, runner.loaded.tokenizer
    prompts = ["sun power", "the solar phone charge trail go now fast light day"]
    requests = [
        _request(p, temperature=0.0, repetition_penalty=1.0, max_new_tokens=12) for p in prompts
    ]
    ours = run(runner, requests, join_at={0: 0, 1: 4})
    for prompt, [text] in zip(prompts, ours, strict=True):
        rendered = runner.render([ChatMessage("user", prompt)])
        assert text == _greedy_reference(model, tokenizer, rendered, 12)


def test_a_conversation_prefix_is_prefilled_once_and_changes_nothing(tmp_path: Path) -> None:
    """The default (prefix_cache off): a chat prompt's turns before its last message are
    prefilled alone once and reused; every answer is transformers' own, hit or miss."""
    runner, directory = _chat_runner(tmp_path)
    assert runner.loaded is not None
    head = (
        ChatMessage("system", "sun power trail"),
        ChatMessage("user", "the solar phone charge"),
        ChatMessage("assistant", "go now fast light day"),
    )
    asks = ["hike night", "sun", "a phone charge"]
    requests = [
        GenerationRequest(
            messages=(*head, ChatMessage("user", ask)),
            sampling=SamplingParams(temperature=0.0, repetition_penalty=1.0, max_new_tokens=10),
        )
        for ask in asks
    ]
    prefix = runner.loaded.conversation_prefix(requests[0].messages)
    assert prefix is not None
    ours = run(runner, requests, join_at={0: 0, 1: 0, 2: 3})
    assert list(runner.prefixes.shared_entries) == [prefix]  # prefilled once, for all three
    assert runner.prefixes.reused_tokens_total == 2 * len(prefix)  # the first one prefilled it
    assert runner.prefixes.entries == {}  # the opportunistic store stays off
    reference, tokenizer = _reference(directory), runner.loaded.tokenizer
    for request, [text] in zip(requests, ours, strict=True):
        rendered = runner.render(request.messages)
        assert text == _greedy_reference(reference, tokenizer, rendered, 10)


def test_a_briefs_next_round_reuses_its_message_and_writes_transformers_answer(
    tmp_path: Path,
) -> None:
    """The same messages primed with another answer start (a brief's next round) prefill only
    that start on the stored KV of the last message; the answer is still transformers' own."""
    runner, directory = _chat_runner(tmp_path)
    assert runner.loaded is not None
    messages = (
        ChatMessage("system", "sun power trail"),
        ChatMessage("user", "the solar phone charge for a hike at night"),
    )
    greedy = SamplingParams(temperature=0.0, repetition_penalty=1.0, max_new_tokens=8)
    first, second = (
        GenerationRequest(messages=messages, sampling=greedy, prefix=start, again=True)
        for start in (" go", " sun")
    )
    run(runner, [first])
    before = runner.reused_prompt_tokens_total
    [[text]] = run(runner, [second])
    prefix = runner.loaded.conversation_prefix(messages)
    assert prefix is not None
    assert runner.reused_prompt_tokens_total - before > len(prefix)  # the message came back
    rendered = runner.render(messages) + " sun"
    answer = _greedy_reference(_reference(directory), runner.loaded.tokenizer, rendered, 8)
    assert text == " sun" + answer


@pytest.mark.parametrize(("prefix_cache", "lone"), [(False, False), (True, False), (False, True)])
def test_rows_attending_their_prefix_apart_write_the_same_text(
    tmp_path: Path, prefix_cache: bool, lone: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows whose prompt starts with a stored prefix keep it out of the batch's KV and attend
    it once per prefix (the default on the CPU): the same text as with the prefix copied into
    every row, for greedy rows (which guess several tokens a step) and seeded sampled ones,
    two prefixes and rows without one in one batch (or, ``lone``, every row on one prefix),
    joining at different steps."""
    directory = build_tiny_model(tmp_path, chat=True)
    runners = []
    for split in (False, True):
        runner = TransformersRunner(
            str(directory),
            cache_dir=tmp_path,
            device="cpu",
            dtype="float32",
            prefix_cache=prefix_cache,
            prefix_attention=split,
        )
        runner.load()
        runners.append(runner)
    heads = [
        (ChatMessage("system", "sun power trail"), ChatMessage("user", "the solar phone")),
        (ChatMessage("system", "hike night go now fast light day"),),
    ]
    greedy = SamplingParams(temperature=0.0, repetition_penalty=1.0, max_new_tokens=12)
    sampled = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, seed=7, max_new_tokens=12)
    requests = [
        GenerationRequest(messages=(*heads[0], ChatMessage("user", "hike")), sampling=greedy),
        GenerationRequest(
            messages=(*heads[1], ChatMessage("user", "sun day")), sampling=sampled, n=3
        ),
        GenerationRequest(messages=(ChatMessage("user", "a phone charge"),), sampling=greedy),
        GenerationRequest(messages=(*heads[0], ChatMessage("user", "go")), sampling=sampled, n=2),
    ]
    join_at = {0: 0, 1: 0, 2: 2, 3: 4}
    if lone:  # the two requests on the first prefix
        requests, join_at = [requests[0], requests[3]], {0: 0, 1: 3}
    plain = run(runners[0], requests, join_at=join_at)
    queries: list[tuple[int, bool]] = []
    attend = PrefixAttention.attend

    def spy(
        plan: PrefixAttention, layer: int, query: torch.Tensor, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        queries.append((query.shape[2], plan.lone))
        return attend(plan, layer, query, *args, **kwargs)

    monkeypatch.setattr(PrefixAttention, "attend", spy)
    assert run(runners[1], requests, join_at=join_at) == plain
    group = 2  # the tiny model's query heads per KV head
    # greedy rows guessed (several positions a step), on the one-prefix path when ``lone``
    assert any(count > group and one is lone for count, one in queries)


def test_prefix_reuse_off_stores_nothing(tmp_path: Path) -> None:
    directory = build_tiny_model(tmp_path, chat=False)
    runner = TransformersRunner(
        str(directory), cache_dir=tmp_path, device="cpu", dtype="float32", prefix_cache=False
    )
    runner.load()
    request = _request("the solar phone charge trail go", temperature=0.0)
    assert run(runner, [request]) == run(runner, [request])
    assert runner.prefixes.entries == {}
    assert runner.prefixes.reused_tokens_total == 0


# --- the fused forward and speculative decoding -----------------------------------------------


def test_the_tiny_model_runs_the_fused_forward(runner: TransformersRunner) -> None:
    assert runner.info is not None
    assert runner.info.forward == "fused"


def test_fused_forward_matches_transformers_with_padding_and_a_cache(
    runner: TransformersRunner,
    reference: Any,
) -> None:
    assert runner.loaded is not None
    model, cache_kwarg = reference, runner.loaded.cache_kwarg
    fused = FusedLlama(model)
    ids = torch.tensor([[1, 1, 1, 5, 6, 7, 8], [4, 9, 10, 11, 12, 13, 14]])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    step_ids = torch.tensor([[15], [16]])
    step_mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], dim=1)
    step_positions = positions[:, -1:] + 1
    with torch.inference_mode():
        theirs_cache, ours_cache = KVCache().cache, KVCache()
        theirs = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            **{cache_kwarg: theirs_cache},
        ).logits[:, -1]
        ours = fused(ours_cache, input_ids=ids, attention_mask=mask, position_ids=positions)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        theirs = model(
            input_ids=step_ids,
            attention_mask=step_mask,
            position_ids=step_positions,
            **{cache_kwarg: theirs_cache},
        ).logits[:, -1]
        ours = fused(
            ours_cache, input_ids=step_ids, attention_mask=step_mask, position_ids=step_positions
        )
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def unspeculative(tmp_path_factory: pytest.TempPathFactory) -> TransformersRunner:
    directory = build_tiny_model(tmp_path_factory.mktemp("plain"), chat=False)
    runner = TransformersRunner(
        str(directory), cache_dir=directory, device="cpu", dtype="float32", speculative_tokens=0
    )
    runner.load()
    return runner


GREEDY_PROMPTS = [
    "sun power sun power sun power sun",
    "the solar phone charge trail go now fast light day",
    "hike trail night hike trail night",
    "a",
]


def _greedy(prompt: str, **overrides: object) -> GenerationRequest:
    params = {"temperature": 0.0, "repetition_penalty": 1.0, "max_new_tokens": 24, **overrides}
    return GenerationRequest(
        messages=(ChatMessage("user", prompt),),
        sampling=SamplingParams(**params),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("shared", [False, True])
def test_speculation_changes_the_step_count_not_the_text(
    unspeculative: TransformersRunner, tmp_path: Path, shared: bool
) -> None:
    directory = build_tiny_model(tmp_path, chat=False)
    runner = TransformersRunner(
        str(directory), cache_dir=tmp_path, device="cpu", dtype="float32", speculative_shared=shared
    )
    runner.load()
    requests = [_greedy(p) for p in GREEDY_PROMPTS]
    plain_before = unspeculative.forward_passes_total
    expected = run_events(unspeculative, requests, join_at={1: 2, 3: 5})
    plain_passes = unspeculative.forward_passes_total - plain_before
    for _ in range(2):  # the second time, shared guesses also come from the finished rows
        got = run_events(runner, requests, join_at={1: 2, 3: 5})
        assert [[(e.text, e.completion_tokens, e.finish_reason) for e in r] for r in got] == [
            [(e.text, e.completion_tokens, e.finish_reason) for e in r] for r in expected
        ]
    assert runner.accepted_tokens_total > 0
    assert runner.forward_passes_total <= 2 * plain_passes  # two runs
    assert runner.drafter is not None
    assert bool(runner.drafter.recent) is shared


def test_speculation_keeps_token_limits_and_stop_strings_exact(
    runner: TransformersRunner, unspeculative: TransformersRunner
) -> None:
    for limit in (1, 2, 5, 7):
        request = _greedy(GREEDY_PROMPTS[0], max_new_tokens=limit)
        [[mine]] = run_events(runner, [request])
        [[theirs]] = run_events(unspeculative, [request])
        assert (mine.text, mine.completion_tokens) == (theirs.text, theirs.completion_tokens)
        assert mine.completion_tokens <= limit
    [[full]] = run(unspeculative, [_greedy(GREEDY_PROMPTS[0])])
    words = full.split()
    assert len(words) >= 4
    request = GenerationRequest(
        messages=(ChatMessage("user", GREEDY_PROMPTS[0]),),
        sampling=SamplingParams(temperature=0.0, repetition_penalty=1.0, max_new_tokens=24),
        stop=(" " + words[3],),
    )
    [[mine]] = run_events(runner, [request])
    [[theirs]] = run_events(unspeculative, [request])
    assert (mine.text, mine.completion_tokens) == (theirs.text, theirs.completion_tokens)


def test_squeezing_out_rejected_guesses_changes_nothing(
    tmp_path: Path, unspeculative: TransformersRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DecodeBatch, "SQUEEZE_SLACK", -16)  # squeeze early and often
    squeezed = []
    original = DecodeBatch._squeeze

    def spy(batch: DecodeBatch) -> None:
        before = batch.attention.shape[1]
        original(batch)
        squeezed.append(before - batch.attention.shape[1])

    monkeypatch.setattr(DecodeBatch, "_squeeze", spy)
    directory = build_tiny_model(tmp_path, chat=False)
    runner = TransformersRunner(
        str(directory), cache_dir=tmp_path, device="cpu", dtype="float32", speculative_shared=True
    )
    runner.load()
    requests = [_greedy(p, max_new_tokens=40) for p in GREEDY_PROMPTS]
    run(runner, requests)  # fills the shared table: more guesses, more rejected ones
    expected = run(unspeculative, requests, join_at={2: 3})
    assert run(runner, requests, join_at={2: 3}) == expected
    assert max(squeezed) > 0


def test_sampled_rows_do_not_guess_by_default(runner: TransformersRunner) -> None:
    drafted = runner.drafted_tokens_total
    run(runner, [_request(GREEDY_PROMPTS[0], temperature=0.8, seed=3, max_new_tokens=16)])
    assert runner.drafted_tokens_total == drafted


def test_sampled_rows_guess_when_asked_and_a_seed_still_fixes_their_text(tiny: Path) -> None:
    runner = TransformersRunner(
        str(tiny), cache_dir=tiny, device="cpu", dtype="float32", speculative_sampled=True
    )
    runner.load()
    request = _request(GREEDY_PROMPTS[0], temperature=0.8, seed=3, max_new_tokens=16)
    drafted = runner.drafted_tokens_total
    alone = run(runner, [request])
    assert runner.drafted_tokens_total > drafted
    mate = _request(GREEDY_PROMPTS[1], temperature=0.9, seed=4, max_new_tokens=16)
    assert run(runner, [mate, request], join_at={0: 0, 1: 2})[1] == alone[0]
    before = runner.drafted_tokens_total
    run(runner, [_greedy(GREEDY_PROMPTS[0], repetition_penalty=1.2)])
    assert runner.drafted_tokens_total == before  # greedy with a penalty: no guesses


def _manual_mean_logprob(model: Any, runner: TransformersRunner, prompt: str, text: str) -> float:
    assert runner.loaded is not None
    loaded = runner.loaded
    p = loaded.encode([loaded.render([ChatMessage("user", prompt)])])[0]
    t = loaded.encode([text])[0]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([p + t])).logits[0].float().log_softmax(-1)
    return sum(float(logits[len(p) - 1 + i, token]) for i, token in enumerate(t)) / len(t)


@pytest.mark.parametrize("fused", [True, False])
def test_score_is_the_mean_token_logprob_whatever_shares_the_batch(
    tmp_path: Path, fused: bool
) -> None:
    from copygen.domain import ScoreRequest

    directory = build_tiny_model(tmp_path, chat=False)
    runner = TransformersRunner(
        str(directory), cache_dir=tmp_path, device="cpu", dtype="float32", fused_forward=fused
    )
    runner.load()
    reference = _reference(directory)
    pairs = [("sun power", "go now fast"), ("the solar phone charge trail", "hike"), ("a", "day")]
    requests = [ScoreRequest((ChatMessage("user", p),), t) for p, t in pairs]
    scores = runner.score(requests)
    for (prompt, text), got in zip(pairs, scores, strict=True):
        expected = _manual_mean_logprob(reference, runner, prompt, text)
        assert got == pytest.approx(expected, abs=1e-4)
    assert runner.score(requests[1:2]) == pytest.approx(scores[1:2], abs=1e-4)
    assert runner.score([ScoreRequest((ChatMessage("user", "sun"),), "")]) == [0.0]


def test_rows_asked_for_logprobs_report_their_tokens_mean_log_probability(
    runner: TransformersRunner, reference: Any
) -> None:
    # Without a repetition penalty or avoided tokens the distribution a row draws from is the
    # model's own: greedy or sampled, the reported figure is what a plain forward gives.
    asked = [
        replace(_request("sun power", temperature=0.0, repetition_penalty=1.0), logprobs=True),
        replace(
            _request("the solar phone charge trail", n=2, temperature=0.9, seed=3,
                     repetition_penalty=1.0),
            logprobs=True,
        ),
    ]  # fmt: skip
    plain = _request("sun power", temperature=0.0)
    events = run_events(runner, [*asked, plain])
    for request, rows in zip(asked, events, strict=False):
        prompt = request.messages[0].content
        for event in rows:
            assert event.text
            expected = _manual_mean_logprob(reference, runner, prompt, event.text)
            assert event.logprob == pytest.approx(expected, abs=1e-3)
    assert events[2][0].logprob is None  # not asked for
