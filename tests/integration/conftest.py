"""Fixtures with real services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server per test, so tests can kill, pause and restart it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
