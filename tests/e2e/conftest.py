"""A real `copygen serve` process with the embedded model, on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.services import free_port

READY_TIMEOUT_S = 300


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_server(env: dict[str, str] | None = None) -> Server:
    """The server's stdout and stderr go to a file (a pipe nobody reads would fill and block)."""
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="copygen-e2e-")) / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "copygen", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "COPYGEN_LOG_FORMAT": "json", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Server(f"http://127.0.0.1:{port}", process, log_path)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            err = server.log()[-2000:]
            raise AssertionError(f"server exited with {server.process.returncode}: {err}")
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError("server never became ready")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    running = start_server()
    try:
        wait_ready(running)
        yield running
    finally:
        stop_server(running)
