"""Fakes that live below the engine: a runner that needs no model, a clock that tests move."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from copygen.domain import ChatMessage, GenerationRequest, ScoreRequest
from copygen.engine.protocols import RowSpec, RunnerInfo, RunnerOutOfMemory
from copygen.generation import RowEvent, RowKey

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def spelled(number: int) -> str:
    """``number`` digit by digit in words (12 → "one two"): distinct replies without figures,
    which the grounding checks would reject as unsupported numbers."""
    return " ".join(DIGIT_WORDS[int(digit)] for digit in str(number))


_PRODUCT = re.compile(r"^Product: (.+)$", re.MULTILINE)


def product_of(request: GenerationRequest) -> str:
    """The brief's product as the prompt gives it (its last ``Product:`` line), or "copy"."""
    found = _PRODUCT.findall(request.messages[-1].content) if request.messages else []
    return found[-1].strip() if found else "copy"


def on_topic(request: GenerationRequest, row: int) -> str:
    """The default reply: a short line about the brief's product (the last ``Product:`` line
    of the prompt), so the copy checks see copy about the product — "Fresh solar charger take
    two" — and not text about nothing, which the off-topic check rejects. A primed row (the
    runner puts the prefix in front) continues the prefix: "Solar for you, take one"."""
    if request.prefix:  # a primed answer (the product's name, a keyword) is continued
        return f" for you, take {spelled(row + 1)}"
    return f"Fresh {product_of(request)} take {spelled(row + 1)}"


@dataclass
class _FakeRow:
    spec: RowSpec
    words: list[str]
    emitted: list[str] = field(default_factory=list)


class FakeRunner:
    """Continuous-batching runner that "decodes" ``reply(request, row)`` one word per step.

    ``gate`` (when set) blocks loading until the test releases it; ``hang`` blocks every step.
    ``joins`` records the rows that joined at each step and ``batch_sizes`` the rows decoded.
    """

    model_id = "fake/model"
    revision = "fake-1"

    def __init__(
        self,
        reply: Callable[[GenerationRequest, int], str] | None = None,
        *,
        gate: threading.Event | None = None,
        hang: threading.Event | None = None,
        whole: bool = True,
        step_delay_s: float = 0.0,
        oom_above: int | None = None,
        fail_when: Callable[[], bool] | None = None,
        device: str = "cpu",
        record: bool = True,
    ) -> None:
        """``oom_above``: a step with more rows raises RunnerOutOfMemory (like CUDA would);
        ``fail_when()``: True makes a step raise RuntimeError. ``record=False`` keeps no
        history of joins, batch sizes and drops (a soak test would see it as a leak)."""
        self.reply = reply or on_topic
        self.gate = gate
        self.hang = hang
        self.whole = whole
        self.step_delay_s = step_delay_s
        self.oom_above = oom_above
        self.fail_when = fail_when
        self.device = device
        self.record = record
        self.ooms = 0
        self.released = 0
        self.rows: dict[RowKey, _FakeRow] = {}
        self.joins: list[list[RowSpec]] = []
        self.batch_sizes: list[int] = []
        self.dropped: list[RowKey] = []
        self.scored: list[list[ScoreRequest]] = []
        self.forward_passes_total = 0
        self.drafted_tokens_total = 0
        self.accepted_tokens_total = 0
        self.reused_prompt_tokens_total = 0

    def device_stats(self) -> dict[str, float]:
        return {}

    @property
    def calls(self) -> list[list[GenerationRequest]]:
        """The distinct requests that joined at each step that had joiners."""
        calls = []
        for join in self.joins:
            seen: dict[tuple[int, int], GenerationRequest] = {}
            for spec in join:
                seen.setdefault(spec.key[:2], spec.request)  # type: ignore[arg-type]
            calls.append(list(seen.values()))
        return calls

    @property
    def active_rows(self) -> int:
        return len(self.rows)

    def load(self) -> RunnerInfo:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        return RunnerInfo(self.model_id, self.device, "float32", 0.0, True)

    def release_memory(self) -> None:
        self.released += 1

    def fallback_to_cpu(self) -> RunnerInfo:
        self.device = "cpu"
        self.oom_above = None
        self.fail_when = None
        return RunnerInfo(self.model_id, "cpu", "float32", 0.0, True)

    def reset(self) -> None:
        self.rows.clear()

    def score(self, requests: Sequence[ScoreRequest]) -> list[float]:
        """A stand-in likelihood: the share of the text's words that the messages contain."""
        self.scored.append(list(requests))
        return [_shared_words(request.messages, request.text) for request in requests]

    def step(self, join: Sequence[RowSpec], drop: Collection[RowKey]) -> list[RowEvent]:
        if join and self.record:
            self.joins.append(list(join))
        if self.hang is not None:
            self.hang.wait(timeout=10)
        time.sleep(self.step_delay_s)
        for key in drop:
            if self.rows.pop(key, None) is not None and self.record:
                self.dropped.append(key)
        if self.fail_when is not None and self.fail_when():
            raise RuntimeError("injected runner failure")
        if self.oom_above is not None and len(self.rows) + len(join) > self.oom_above:
            self.ooms += 1
            self.rows.clear()
            raise RunnerOutOfMemory("injected out of memory")
        if join:
            self.forward_passes_total += 1
            for spec in join:
                text = spec.request.prefix + self.reply(spec.request, spec.key[2])
                self.rows[spec.key] = _FakeRow(spec, text.split(" "))
        if self.record:
            self.batch_sizes.append(len(self.rows))
        if self.rows:
            self.forward_passes_total += 1
        events = []
        for key, row in list(self.rows.items()):
            take = len(row.words) if self.whole else 1
            piece, row.words = row.words[:take], row.words[take:]
            delta = (" " if row.emitted else "") + " ".join(piece)
            row.emitted += piece
            budget = row.spec.request.sampling.max_new_tokens
            finish = None
            if not row.words:
                finish = "stop"
            elif len(row.emitted) >= budget:
                finish = "length"
            events.append(
                RowEvent(
                    key,
                    delta,
                    finish,  # type: ignore[arg-type]
                    " ".join(row.emitted) if finish else "",
                    prompt_tokens=sum(len(m.content.split()) for m in row.spec.request.messages),
                    completion_tokens=len(row.emitted) + (finish == "stop"),
                    # A stand-in for the likelihood the model gave what it wrote: up to 0.
                    logprob=_shared_words(row.spec.request.messages, " ".join(row.emitted)) - 1
                    if finish and row.spec.request.logprobs
                    else None,
                )
            )
            if finish:
                del self.rows[key]
        return events


def _shared_words(messages: Sequence[ChatMessage], text: str) -> float:
    """The share of ``text``'s words that ``messages`` contain (0 for no text)."""
    context = " ".join(m.content for m in messages).lower().split()
    words = text.lower().split()
    return sum(word in context for word in words) / len(words) if words else 0.0


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
