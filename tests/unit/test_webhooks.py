"""Webhook deliveries against real receivers on loopback sockets: a name that changes its
answer between the address check and the connection (DNS rebinding), and a receiver that
speaks TLS for the name while the connection goes to its address."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client import wait_ready
from tests.fakes import FakeRunner
from tests.services import free_port
from tests.unit.api.test_jobs import ALICE, Receiver, client_for, deliveries, items

SECRET = "s3cret-master-key"


async def one_delivery(tmp_path: Path, url: str, **settings: Any) -> dict[str, Any]:
    app = await client_for(tmp_path, FakeRunner(), webhook_secret=SECRET, **settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        await wait_ready(c)
        job = (await c.post("/v1/jobs", json={"items": items(1), "webhook_url": url},
                            headers=ALICE)).json()  # fmt: skip
        started = time.monotonic()
        [delivery] = await deliveries(c, job["id"], 1)
        delivery["seconds"] = time.monotonic() - started
    return delivery


def fake_dns(monkeypatch: pytest.MonkeyPatch, name: str, answer: Callable[[int], str]) -> None:
    """The system resolver (what the address check and any HTTP client ask) answers
    ``answer(n)`` for the n-th question about ``name`` (from 0), and asks DNS for the rest."""
    real_getaddrinfo = socket.getaddrinfo
    asked = [0]

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (name, name.encode()):
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = answer(asked[0])
        asked[0] += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (address, int(port or 0)))]  # fmt: skip

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``rebind.test`` answers 127.0.0.2 twice (the check at submission and the one before the
    delivery), then 127.0.0.1: an attacker's DNS with a zero TTL. 127.0.0.2 stands for a
    public address (one that a test can listen on), 127.0.0.1 for the service's own network."""
    real_is_global = ipaddress.IPv4Address.is_global

    def is_global(address: ipaddress.IPv4Address) -> bool:
        return str(address) == "127.0.0.2" or bool(real_is_global.__get__(address))

    fake_dns(monkeypatch, "rebind.test", lambda n: "127.0.0.2" if n < 2 else "127.0.0.1")
    monkeypatch.setattr(ipaddress.IPv4Address, "is_global", property(is_global))


@pytest.mark.usefixtures("rebinding_dns")
async def test_a_delivery_goes_to_the_address_that_was_checked(tmp_path: Path) -> None:
    """The name is resolved once per attempt and the connection goes to that address, with
    the name in the Host header: a second answer never decides where the POST goes."""
    port = free_port()
    public = Receiver(200, host="127.0.0.2", port=port)
    internal = Receiver(200, host="127.0.0.1", port=port)
    try:
        delivery = await one_delivery(tmp_path, f"http://rebind.test:{port}/hook",
                                      webhook_timeout_s=2)  # fmt: skip
    finally:
        public.server.shutdown()
        internal.server.shutdown()
    assert internal.calls == []
    [(headers, _)] = public.calls
    assert headers["Host"] == f"rebind.test:{port}"
    assert delivery["error"] is None


async def test_an_https_delivery_is_checked_against_the_name_not_the_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connecting to the checked address keeps TLS about the name: SNI and the certificate's
    name are the URL's host (a certificate for the name, trusted through SSL_CERT_FILE)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=hook.tls.test",
                    "-addext", "subjectAltName=DNS:hook.tls.test"],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _socket, name, _context: names.append(name)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    fake_dns(monkeypatch, "hook.tls.test", lambda n: "127.0.0.1")
    receiver = Receiver(200, tls=context)
    port = receiver.server.server_port
    try:
        delivery = await one_delivery(tmp_path, f"https://hook.tls.test:{port}/hook",
                                      webhook_allow_private=True, webhook_timeout_s=5)  # fmt: skip
    finally:
        receiver.server.shutdown()
    assert delivery["error"] is None
    assert names == ["hook.tls.test"]
    [(headers, _)] = receiver.calls
    assert headers["Host"] == f"hook.tls.test:{port}"
