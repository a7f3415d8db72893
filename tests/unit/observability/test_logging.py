"""What the configured logs never show: URLs of outgoing calls (webhook and backend URLs may
carry tokens in their paths or queries), whatever level the operator asks for."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog

from copygen.observability.logging import QUIET_LIBRARIES, configure_logging

TOKEN = "hooktoken4c1dCANARY"
QUIET = QUIET_LIBRARIES


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back for the tests after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIET}
    yield
    root.handlers, root.level = handlers, level
    for name, before in levels.items():
        logging.getLogger(name).setLevel(before)
    structlog.reset_defaults()


@pytest.mark.parametrize("level", ["debug", "info"])
def test_outgoing_call_urls_are_never_logged(
    restored_logging: None, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    configure_logging(level, "json")
    transport = httpx.MockTransport(lambda _: httpx.Response(204))
    with httpx.Client(transport=transport) as client:
        client.post(f"https://hooks.example.com/services/{TOKEN}?token={TOKEN}", json={})
    logging.getLogger("copygen.test").warning("still logging")
    out = capsys.readouterr().out
    assert "still logging" in out
    assert TOKEN not in out
    assert "hooks.example.com" not in out
    for name in QUIET:
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
