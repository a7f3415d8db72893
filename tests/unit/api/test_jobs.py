"""Jobs over an app with a fake runner and a real SQLite file: submit (202), progress and
results, validation, tenant isolation, limits, cancelling, and webhooks to a loopback
receiver (one valid signature per job end; the documented retries when it fails)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from copygen.api.app import create_app
from copygen.config import Settings
from copygen.engine.engine import Engine
from tests.client import wait_ready
from tests.fakes import FakeRunner, spelled
from tests.services import free_port

KEY_A, KEY_B = "key-alice-0123456789abcdef", "key-bob-0123456789abcdef"
ALICE = {"Authorization": f"Bearer {KEY_A}"}
BOB = {"Authorization": f"Bearer {KEY_B}"}


def items(count: int) -> list[dict[str, Any]]:
    return [
        {"product": f"Lamp {spelled(i)}", "channel": "sms", "variants": 1} for i in range(count)
    ]


async def client_for(tmp_path: Path, runner: FakeRunner, **settings: Any) -> Any:
    settings = {"webhook_backoff_s": 0.05, **settings}
    config = Settings(warmup=False, data_dir=tmp_path, api_keys=f"alice:{KEY_A},bob:{KEY_B}",
                      **settings)  # fmt: skip
    return create_app(config, engine=Engine(config, runner))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    runner = FakeRunner(lambda r, row: f"Bright lamp {spelled(row)}")
    app = await client_for(
        tmp_path, runner, webhook_secret="s3cret-master-key", webhook_allow_private=True
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        yield c


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(400):
        job = (await client.get(f"/v1/jobs/{job_id}", headers=ALICE)).json()
        if job["status"] in ("succeeded", "cancelled", "failed") and (
            not job["webhook_url"] or job["deliveries"]
        ):
            return dict(job)
        await asyncio.sleep(0.025)
    raise AssertionError("the job never finished")


async def test_a_job_answers_at_once_and_finishes_every_item_once(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/jobs", json={"items": items(20)}, headers=ALICE)
    assert response.status_code == 202
    job = response.json()
    assert (job["status"], job["total"], job["done"]) == ("queued", 20, 0)
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    done = await finished(client, job["id"])
    assert (done["status"], done["done"], done["failed"], done["progress"]) == (
        "succeeded", 20, 0, 1.0,
    )  # fmt: skip
    assert [r["index"] for r in done["results"]] == list(range(20))
    assert all(r["result"]["variants"] for r in done["results"])
    metrics = (await client.get("/metrics")).text
    assert 'copygen_jobs{status="succeeded"} 1.0' in metrics
    assert "copygen_job_items_done_total 20.0" in metrics
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=BOB)).status_code == 404
    assert (await client.delete(f"/v1/jobs/{job['id']}", headers=BOB)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": [{"product": "ok"}, {"product": ""}]}, "items.1.product"),
        ({"items": []}, "items"),
        ({"items": items(1), "webhook_url": "ftp://example.com"}, "webhook_url"),
        ({"items": items(1), "webhook_url": "http://[::1"}, "webhook_url"),
    ],
)
async def test_invalid_jobs_are_refused_whole(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/jobs", json=body, headers=ALICE)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


class Receiver:
    """A loopback HTTP server that records webhook POSTs and answers ``status``."""

    def __init__(
        self,
        status: int,
        host: str = "127.0.0.1",
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.status = status
        self.calls: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port or free_port()), Handler)
        self.url = f"http://{host}:{self.server.server_port}/hook"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://{host}:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(200)
    yield server
    server.server.shutdown()


async def test_a_webhook_gets_one_valid_signature_when_the_job_ends(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = {"items": items(3), "webhook_url": receiver.url}
    job = (await client.post("/v1/jobs", json=body, headers=ALICE)).json()
    done = await finished(client, job["id"])
    await asyncio.sleep(0.2)  # nothing more arrives
    [(headers, payload)] = receiver.calls
    secret = (await client.get("/v1/jobs/webhook-secret", headers=ALICE)).json()["secret"]
    stamp, mac = (part.split("=", 1)[1] for part in headers["X-Copygen-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256)
    assert hmac.compare_digest(mac, expected.hexdigest())
    other = (await client.get("/v1/jobs/webhook-secret", headers=BOB)).json()["secret"]
    assert other != secret
    assert b'"status":"succeeded"' in payload
    assert [(d["attempt"], d["outcome"], d["error"]) for d in done["deliveries"]] == [
        (1, "delivered", None)
    ]


async def deliveries(client: httpx.AsyncClient, job_id: str, count: int) -> list[dict[str, Any]]:
    """The job's delivery log once it has ``count`` entries (10 s at most)."""
    for _ in range(400):
        found = (await client.get(f"/v1/jobs/{job_id}", headers=ALICE)).json()["deliveries"]
        if found and len(found) >= count:
            return list(found)
        await asyncio.sleep(0.025)
    raise AssertionError(f"fewer than {count} deliveries")


async def test_a_failing_receiver_gets_the_documented_retries(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """Every retry carries the same X-Copygen-Delivery id (and the same signed body), so a
    receiver that got an earlier attempt after all can tell it is the same event."""
    receiver.status = 500
    job = (await client.post("/v1/jobs", json={"items": items(1), "webhook_url": receiver.url},
                             headers=ALICE)).json()  # fmt: skip
    found = await deliveries(client, job["id"], 4)
    assert [(d["attempt"], d["outcome"], d["error"]) for d in found] == [
        (n, "failed", "failed") for n in (1, 2, 3, 4)
    ]
    assert len(receiver.calls) == 4  # the first try and COPYGEN_WEBHOOK_RETRIES=3 more
    ids = {headers.get("X-Copygen-Delivery") for headers, _ in receiver.calls}
    assert len(ids) == 1
    assert None not in ids
    assert [h["X-Copygen-Delivery-Attempt"] for h, _ in receiver.calls] == ["1", "2", "3", "4"]
    assert len({body for _, body in receiver.calls}) == 1


async def test_a_pending_delivery_survives_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    """The receiver fails while the first process runs; the process stops with the retry
    pending; the next process over the same database delivers it, with the same id."""
    receiver.status = 500
    settings = {"webhook_secret": "s3cret-master-key", "webhook_allow_private": True,
                "webhook_backoff_s": 0.3}  # fmt: skip
    first = await client_for(tmp_path, FakeRunner(), **settings)
    async with (
        first.router.lifespan_context(first),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://t") as c,
    ):
        await wait_ready(c)
        body = {"items": items(1), "webhook_url": receiver.url}
        job = (await c.post("/v1/jobs", json=body, headers=ALICE)).json()
        await deliveries(c, job["id"], 1)
    failed = len(receiver.calls)
    receiver.status = 200
    second = await client_for(tmp_path, FakeRunner(), **settings)
    async with (
        second.router.lifespan_context(second),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://t") as c,
    ):
        found = await deliveries(c, job["id"], failed + 1)
    assert [d["error"] for d in found] == ["failed"] * failed + [None]
    assert len(receiver.calls) == failed + 1
    assert len({headers["X-Copygen-Delivery"] for headers, _ in receiver.calls}) == 1


async def test_failed_deliveries_say_only_failed(tmp_path: Path, receiver: Receiver) -> None:
    """A refused connection and a 500 look the same in the delivery log: what a tenant's
    webhook URL met inside the network is no port scanner's oracle."""
    receiver.status = 500
    app = await client_for(tmp_path, FakeRunner(), webhook_secret="s3cret-master-key",
                           webhook_allow_private=True, webhook_retries=0)  # fmt: skip
    closed = f"http://127.0.0.1:{free_port()}/hook"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        logs = []
        for url in (receiver.url, closed):
            job = (await c.post("/v1/jobs", json={"items": items(1), "webhook_url": url},
                                headers=ALICE)).json()  # fmt: skip
            [delivery] = await deliveries(c, job["id"], 1)
            logs.append((delivery["outcome"], delivery["error"]))
    assert logs == [("failed", "failed"), ("failed", "failed")]


async def test_simultaneous_submissions_never_exceed_the_active_job_limit(
    tmp_path: Path,
) -> None:
    gate = threading.Event()  # the model never loads: accepted jobs stay queued
    app = await client_for(tmp_path, FakeRunner(gate=gate), jobs_max_active=1)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        answers = await asyncio.gather(
            *(c.post("/v1/jobs", json={"items": items(1)}, headers=ALICE) for _ in range(10))
        )
        gate.set()
    assert sorted(a.status_code for a in answers) == [202] + [429] * 9


async def test_an_unexpected_error_fails_its_job_and_the_runner_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (not a CopygenError) while making a job's items fails that job, once: its items
    say internal_error without the exception's text, the traceback goes to the log, no
    replica claims the job again, the next job runs, and shutdown is clean."""
    from copygen.service.jobs import JobRunner

    runners: list[JobRunner] = []
    start = JobRunner.start

    async def started(self: JobRunner) -> None:
        runners.append(self)
        await start(self)

    monkeypatch.setattr(JobRunner, "start", started)
    app = await client_for(tmp_path, FakeRunner(lambda r, row: f"Bright lamp {spelled(row)}"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        [runner] = runners
        make = runner.copywriter.generate_many

        async def buggy(briefs: Any, *args: Any, **kwargs: Any) -> Any:
            if any(brief.product.startswith("Poison") for brief in briefs):
                raise RuntimeError("secret-internal-detail")
            return await make(briefs, *args, **kwargs)

        monkeypatch.setattr(runner.copywriter, "generate_many", buggy)
        poison = [{"product": "Poison lamp", "channel": "sms", "variants": 1}] * 3
        bad = (await c.post("/v1/jobs", json={"items": poison}, headers=ALICE)).json()
        good = (await c.post("/v1/jobs", json={"items": items(2)}, headers=ALICE)).json()
        failed = await finished(c, bad["id"])
        done = await finished(c, good["id"])
        assert await runner.repo.claim("another-replica", 30) is None
        metrics = (await c.get("/metrics")).text
    assert (failed["status"], failed["done"], failed["failed"]) == ("failed", 3, 3)
    assert {r["error"]["type"] for r in failed["results"]} == {"internal_error"}
    assert "secret-internal-detail" not in str(failed)
    assert (done["status"], done["done"], done["failed"]) == ("succeeded", 2, 0)
    assert 'copygen_jobs{status="failed"} 1.0' in metrics
    logged = [r for r in caplog.records if r.exc_info and r.name == "copygen.jobs"]
    assert logged
    assert bad["id"] in logged[0].getMessage()


async def test_webhooks_to_private_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    app = await client_for(tmp_path, FakeRunner(), webhook_secret="k" * 20)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        refused = ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest", "http://10.0.0.1/",
                   "http://a..b/", "http://[::1]/")  # fmt: skip
        for url in refused:
            response = await c.post("/v1/jobs", json={"items": items(1), "webhook_url": url},
                                    headers=ALICE)  # fmt: skip
            assert (response.status_code, response.json()["error"]["field"]) == (422, "webhook_url")


async def test_limits_and_cancelling(tmp_path: Path) -> None:
    gate = threading.Event()  # the model never loads: jobs stay queued
    app = await client_for(tmp_path, FakeRunner(gate=gate), jobs_max_active=1,
                           jobs_max_items_per_day=5)  # fmt: skip
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        first = (await c.post("/v1/jobs", json={"items": items(2)}, headers=ALICE)).json()
        second = await c.post("/v1/jobs", json={"items": items(1)}, headers=ALICE)
        assert second.status_code == 429
        assert second.json()["error"]["type"] == "limit_exceeded"
        assert second.headers["retry-after"]
        assert (await c.post("/v1/jobs", json={"items": items(1)}, headers=BOB)).status_code == 202
        cancelled = (await c.delete(f"/v1/jobs/{first['id']}", headers=ALICE)).json()
        assert cancelled["status"] == "cancelled"
        too_many = await c.post("/v1/jobs", json={"items": items(4)}, headers=ALICE)
        assert too_many.status_code == 429  # 2 + 4 items today > 5
        gate.set()


async def test_an_asset_job_makes_the_set_its_route_would(client: httpx.AsyncClient) -> None:
    request = {"product": "Solar lamp", "final_url": "https://example.com/lamp", "headlines": 5,
               "descriptions": 2, "path1": "Lamps"}  # fmt: skip
    job = (await client.post("/v1/jobs", json={"kind": "google-ads-rsa", "request": request},
                             headers=ALICE)).json()  # fmt: skip
    assert (job["status"], job["total"]) == ("queued", 1)
    done = await finished(client, job["id"])
    assert (done["status"], done["done"], done["results"]) == ("succeeded", 1, None)
    asset = done["asset"]
    assert (asset["final_url"], asset["paths"]) == ("https://example.com/lamp", ["Lamps", ""])
    assert 1 <= len(asset["headlines"]) <= 5
    assert set(asset["checks"]) >= {"passed", "failures", "keyword_headlines"}
    for body, field in (
        ({"kind": "meta-ad", "request": {"product": "x", "channel": "sms"}}, "request"),
        ({"kind": "meta-ad", "items": items(1)}, "request"),
        ({"items": items(1), "request": request}, "items"),
    ):
        refused = await client.post("/v1/jobs", json=body, headers=ALICE)
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == field


async def test_model_errors_fail_their_items_and_a_paused_service_gives_the_job_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The first chunk's generation fails (a model error: those items fail, with the error);
    that opens the breaker, so the next chunk meets CircuitOpen (the service cannot generate
    now): the job is given back, not failed, and finishes once the breaker lets work in."""
    from copygen.service import jobs

    monkeypatch.setattr(jobs, "BACKOFF_S", 0.05)
    failing = {"steps": 1}

    def fail() -> bool:
        failing["steps"] -= 1
        return failing["steps"] >= 0

    runner = FakeRunner(lambda r, row: f"Bright lamp {spelled(row)}", fail_when=fail)
    app = await client_for(tmp_path, runner, breaker_failures=1, breaker_reset_s=0.3)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        job = (await c.post("/v1/jobs", json={"items": items(16)}, headers=ALICE)).json()
        done = await finished(c, job["id"])
    assert (done["status"], done["done"], done["failed"]) == ("succeeded", 16, jobs.CHUNK)
    results = done["results"]
    assert [r["index"] for r in results] == list(range(16))
    assert all(r["error"]["type"] == "generation_failed" for r in results[: jobs.CHUNK])
    assert all(r["error"] is None and r["result"] for r in results[jobs.CHUNK :])
    paused = [r.getMessage() for r in caplog.records if "paused" in r.getMessage()]
    assert paused
    assert all(message.endswith("circuit_open") for message in paused)
