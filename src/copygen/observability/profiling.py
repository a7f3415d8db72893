"""On-demand profiles of the live process: every thread's stack sampled every few
milliseconds for a few seconds, as speedscope JSON (https://www.speedscope.app, one "sampled"
profile per thread: the event loop is ``MainThread``, the model ``copygen-model_0``).

A background thread reads ``sys._current_frames()`` every ``interval_s``, so it sees what each
thread is running, native waits included (the loop idling in ``select``, the model thread in
a forward pass), and needs no tracing hook in the profiled code. Each sample weighs the time
since the one before (a stack seen again in a row makes the last sample heavier), so a
thread's samples add up to the profile's wall time. One profile
runs at a time (``Busy`` otherwise); docs/observability.md says how to read one.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from copygen import __version__
from copygen.errors import LimitExceeded

#: Seconds between two samples: 200 a second, each costing ~0.05 ms for ~10 threads.
INTERVAL_S = 0.005
#: The longest profile one call may take.
MAX_SECONDS = 30
SCHEMA = "https://www.speedscope.app/file-format-schema.json"


class Busy(LimitExceeded):
    """A profile is already running: one at a time."""

    type = "profile_running"


@dataclass(slots=True)
class _Thread:
    name: str
    #: Each sample: its stack (frame indices, outermost first) and its weight in seconds.
    stacks: list[list[int]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


class Samples:
    """What a sampling run collected: the frames seen (one per function) and each thread's
    stacks. ``take`` adds one sample of every thread; ``speedscope`` writes the file."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, str, int]] = []
        self._index: dict[CodeType, int] = {}
        self.threads: dict[int, _Thread] = {}
        self.seconds = 0.0

    def take(self, frames: dict[int, FrameType], weight_s: float, skip: int) -> None:
        """One sample of each thread in ``frames`` (``sys._current_frames()``) but ``skip``
        (the sampler's own), weighing ``weight_s``."""
        self.seconds += weight_s
        for ident, frame in frames.items():
            if ident == skip:
                continue
            thread = self.threads.get(ident)
            if thread is None:
                thread = self.threads[ident] = _Thread(_thread_name(ident))
            stack: list[int] = []
            current: FrameType | None = frame
            while current is not None:
                stack.append(self._frame(current.f_code))
                current = current.f_back
            stack.reverse()
            if thread.stacks and thread.stacks[-1] == stack:  # still there: one longer sample
                thread.weights[-1] += weight_s
            else:
                thread.stacks.append(stack)
                thread.weights.append(weight_s)

    def _frame(self, code: CodeType) -> int:
        index = self._index.get(code)
        if index is None:
            index = self._index[code] = len(self.frames)
            self.frames.append((code.co_qualname, code.co_filename, code.co_firstlineno))
        return index

    def speedscope(self, name: str) -> dict[str, Any]:
        """The samples as a speedscope file: one sampled profile per thread, in ms, the
        event loop's first."""
        threads = sorted(self.threads.values(), key=lambda t: t.name != "MainThread")
        return {
            "$schema": SCHEMA,
            "name": name,
            "exporter": f"copygen {__version__}",
            "activeProfileIndex": 0,
            "shared": {
                "frames": [{"name": n, "file": f, "line": line} for n, f, line in self.frames]
            },
            "profiles": [
                {
                    "type": "sampled",
                    "name": thread.name,
                    "unit": "milliseconds",
                    "startValue": 0,
                    "endValue": round(sum(thread.weights) * 1000, 3),
                    "samples": thread.stacks,
                    "weights": [round(w * 1000, 3) for w in thread.weights],
                }
                for thread in threads
            ],
        }


def sample(samples: Samples, stop: threading.Event, interval_s: float = INTERVAL_S) -> None:
    """Sample every thread into ``samples`` every ``interval_s`` until ``stop`` is set (the
    body of the sampling thread)."""
    me = threading.get_ident()
    last = time.perf_counter()
    while not stop.wait(interval_s):
        now = time.perf_counter()
        samples.take(sys._current_frames(), now - last, skip=me)
        last = now


class Profiler:
    """One sampling profile at a time, of every thread of the process."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._ends_at: float | None = None

    @property
    def running(self) -> bool:
        return self._ends_at is not None

    async def record(self, seconds: float) -> dict[str, Any]:
        """Sample for ``seconds`` (the caller bounds it), then the speedscope file. A second
        call while one runs is ``Busy`` (429, Retry-After: when this one ends). Cancelling
        the caller (a client that left) stops the sampling thread."""
        if self._ends_at is not None:
            wait = max(1, round(self._ends_at - time.monotonic()))
            raise Busy("a profile is already running; one at a time", retry_after_s=wait)
        self._ends_at = time.monotonic() + seconds
        samples, stop = Samples(), threading.Event()
        sampler = threading.Thread(
            target=sample, args=(samples, stop, self.interval_s), name="copygen-profiler",
            daemon=True,
        )  # fmt: skip
        try:
            sampler.start()
            await asyncio.sleep(seconds)
        finally:
            self._ends_at = None
            stop.set()
            sampler.join(1.0)  # it wakes within interval_s
        name = f"copygen {seconds:g} s at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        return await asyncio.to_thread(samples.speedscope, name)


def _thread_name(ident: int) -> str:
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"thread {ident}"
