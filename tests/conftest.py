"""Shared fixtures. Markers come from the folder a test lives in."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import PostgresServer, RedisServer

TESTS = Path(__file__).parent

# The memory guard defaults to 90% of the container's cgroup limit. The test process holds
# torch and several models at once, so on a tightly limited CI container it could start
# shedding work mid-suite; tests that exercise the guard set their own mark.
os.environ.setdefault("COPYGEN_MEMORY_HIGH_BYTES", str(1 << 40))
# In-process clients call the app as http://t, real servers as 127.0.0.1: both are this
# service's names here (a loopback bind serves only the loopback names by default).
os.environ.setdefault("COPYGEN_ALLOWED_HOSTS", "t,127.0.0.1,localhost,::1")
# Brands and feedback: a throwaway SQLite database per test session (and the servers it starts),
# never the user's own data directory. Tests about the store give each app its own directory.
os.environ.setdefault("COPYGEN_DATA_DIR", tempfile.mkdtemp(prefix="copygen-test-data-"))
# Selection (a wider first round while the engine is nearly idle) depends on what else runs at
# that moment: tests that count rows, tokens or calls would depend on timing. They run without
# it; tests/unit/service/test_rounds.py sets it where it is the subject.
os.environ.setdefault("COPYGEN_SELECTION_POOL", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        kind = Path(item.fspath).relative_to(TESTS).parts[0]
        if kind in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session; tests take fresh databases of it."""
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server per test, so tests can kill, pause and restart it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
