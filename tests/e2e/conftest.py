"""A real `copygen serve` process with the embedded model, on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import Server, start_server, stop_server, wait_ready

__all__ = ["Server", "server", "start_server", "stop_server", "wait_ready"]


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    running = start_server()
    try:
        wait_ready(running)
        yield running
    finally:
        stop_server(running)
