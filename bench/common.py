"""What the benchmarks share: free loopback ports, server processes started and stopped, and the
CPU paths to measure (with and without AMX)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(f"/tmp/bench-{name}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited; see /tmp/bench-{self.name}.log")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.name} never became ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    return next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "?")


def amx_present() -> bool:
    flags = next(
        (ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")),
        "",
    )
    return "amx_tile" in flags.split()


@dataclass(frozen=True)
class CpuPath:
    name: str
    #: The copygen server's environment on this path, and the llama.cpp build it is compared to.
    env: dict[str, str]
    llama_build: str


def cpu_paths() -> list[CpuPath]:
    """AMX and no AMX where the CPU has AMX; otherwise the one path there is."""
    if not amx_present():
        return [CpuPath("no AMX (this CPU has none)", {}, "native")]
    return [
        CpuPath("AMX", {}, "native"),
        CpuPath("no AMX", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "noamx"),
    ]
