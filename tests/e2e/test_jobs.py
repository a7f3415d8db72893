"""A job in a real `copygen serve` survives a kill -9 mid-run: after a restart it resumes
from its first unfinished item and ends with every item exactly once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.services import start_server, stop_server, wait_ready
from tests.tiny_model import build_tiny_model

TOTAL = 32


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-jobs"), chat=True)


def _progress(url: str, job_id: str) -> dict[str, object]:
    return dict(httpx.get(f"{url}/v1/jobs/{job_id}", timeout=30).json())


def test_a_job_killed_mid_run_finishes_after_restart_with_no_item_lost_or_doubled(
    tmp_path: Path, tiny: Path
) -> None:
    env = {
        "COPYGEN_MODEL": str(tiny),
        "COPYGEN_LOG_LEVEL": "warning",
        "COPYGEN_DATA_DIR": str(tmp_path / "data"),
        "COPYGEN_JOB_LEASE_S": "2",
    }
    items = [
        {"product": f"lamp {i}", "channel": "linkedin_post", "variants": 1,
         "max_new_tokens": 128, "grounding": "off", "seed": i}
        for i in range(TOTAL)
    ]  # fmt: skip
    server = start_server(env)
    try:
        wait_ready(server)
        job = httpx.post(f"{server.url}/v1/jobs", json={"items": items}, timeout=30).json()
        deadline = time.monotonic() + 120
        while (done := int(_progress(server.url, job["id"])["done"])) == 0:  # type: ignore[call-overload]
            assert time.monotonic() < deadline, "no item finished"
            time.sleep(0.05)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        assert 0 < done < TOTAL, "kill the job mid-run, not before or after"

        server = start_server(env, port=int(server.url.rsplit(":", 1)[1]))
        wait_ready(server)
        deadline = time.monotonic() + 180
        while (state := _progress(server.url, job["id"]))["status"] != "succeeded":
            assert time.monotonic() < deadline, state["status"]
            time.sleep(0.2)
        assert (state["done"], state["failed"]) == (TOTAL, 0)
        results = state["results"]
        assert isinstance(results, list)
        assert [r["index"] for r in results] == list(range(TOTAL))
    finally:
        if server.process.poll() is None:
            stop_server(server)
