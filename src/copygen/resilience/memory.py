"""Memory guard: shed new generation work while memory is above a high mark, recover below a
low mark. Process RSS against a byte limit (by default 90% of the container's cgroup limit,
when there is one) and accelerator memory against a share of the device's total."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger("copygen.memory")

CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")
LOW_MARK_RATIO = 0.9


def cgroup_limit_bytes(path: Path = CGROUP_LIMIT) -> int | None:
    """The container's memory limit (cgroup v2), or None when unlimited or unknown."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text == "max" or not text.isdigit() else int(text)


@dataclass
class MemoryReading:
    rss_bytes: int
    device_used_bytes: float = 0.0
    device_total_bytes: float = 0.0


class MemoryGuard:
    """Hysteresis between a high and a low mark. ``relieve`` runs when shedding starts (the
    engine passes one that collects garbage and empties the accelerator's cache)."""

    def __init__(
        self,
        *,
        rss_high_bytes: int | None,
        device_high_ratio: float,
        read_device: Callable[[], dict[str, float]],
        relieve: Callable[[], None],
    ) -> None:
        self.rss_high_bytes = rss_high_bytes
        self.device_high_ratio = device_high_ratio
        self._read_device = read_device
        self._relieve = relieve
        self._process = psutil.Process()
        self.shedding = False
        self.shed_episodes = 0
        self.last = MemoryReading(0)

    def read(self) -> MemoryReading:
        device = self._read_device()
        return MemoryReading(
            self._process.memory_info().rss,
            device.get("cuda_memory_reserved_bytes", 0.0),
            device.get("cuda_memory_total_bytes", 0.0),
        )

    def check(self) -> bool:
        """Sample memory and update ``shedding``; True while shedding."""
        reading = self.last = self.read()
        # While shedding, "high" means above the low mark: hysteresis, no flapping.
        high = self._above(reading, LOW_MARK_RATIO if self.shedding else 1.0)
        if high and not self.shedding:
            self.shedding = True
            self.shed_episodes += 1
            log.warning("memory above the high mark; shedding new work (rss=%d)", reading.rss_bytes)
            self._relieve()
        elif not high and self.shedding:
            self.shedding = False
            log.info("memory below the low mark; taking work again (rss=%d)", reading.rss_bytes)
        return self.shedding

    def _above(self, reading: MemoryReading, scale: float) -> bool:
        if self.rss_high_bytes and reading.rss_bytes >= self.rss_high_bytes * scale:
            return True
        total = reading.device_total_bytes
        return bool(total) and reading.device_used_bytes >= total * self.device_high_ratio * scale

    def status(self) -> dict[str, object]:
        return {
            "shedding": self.shedding,
            "shed_episodes": self.shed_episodes,
            "rss_bytes": self.last.rss_bytes,
            "rss_high_bytes": self.rss_high_bytes,
            "rss_low_bytes": int(self.rss_high_bytes * LOW_MARK_RATIO)
            if self.rss_high_bytes
            else None,
            "device_used_bytes": self.last.device_used_bytes,
            "device_high_ratio": self.device_high_ratio,
        }
