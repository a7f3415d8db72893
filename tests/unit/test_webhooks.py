"""Webhook deliveries against real receivers on loopback sockets: a name that changes its
answer between the address check and the connection (DNS rebinding), a receiver that streams
an endless body, and one that trickles its headers; then, without a network, the signature,
the URL check and the address check (every resolved address must be public)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from copygen.errors import InvalidRequest
from copygen.webhooks import (
    Resolver,
    check_target,
    check_url,
    deliver,
    signature,
    tenant_secret,
)
from tests.client import wait_ready
from tests.fakes import FakeRunner
from tests.services import free_port
from tests.unit.api.test_jobs import ALICE, Receiver, client_for, deliveries, items

SECRET = "s3cret-master-key"


class RawReceiver:
    """A loopback TCP server that reads one request and answers with ``respond(send)``, where
    ``send`` writes bytes and says False once the client has gone; ``sent`` counts what
    reached the socket."""

    def __init__(self, respond: Callable[[Callable[[bytes], bool]], None]) -> None:
        self.respond = respond
        self.sent = 0
        self.requests = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))  # fmt: skip
            while len(body) < length:
                body += conn.recv(65536)
            self.requests += 1

            def send(payload: bytes) -> bool:
                try:
                    conn.sendall(payload)
                except OSError:
                    return False
                self.sent += len(payload)
                return True

            self.respond(send)

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def raw_receiver(respond: Callable[[Callable[[bytes], bool]], None]) -> Iterator[RawReceiver]:
    server = RawReceiver(respond)
    try:
        yield server
    finally:
        server.close()


def endless_body(send: Callable[[bytes], bool]) -> None:
    """200 at once, then a chunked body of 64 KiB chunks, up to 64 MiB (~10 s)."""
    if not send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"):
        return
    chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    for _ in range(1024):
        if not send(chunk):
            return
        time.sleep(0.01)
    send(b"0\r\n\r\n")


def trickled_headers(send: Callable[[bytes], bool]) -> None:
    """A status line, then one header byte every 0.1 s for a minute: never a read timeout."""
    if not send(b"HTTP/1.1 200 OK\r\nX-Slow: "):
        return
    for _ in range(600):
        if not send(b"a"):
            return
        time.sleep(0.1)


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


async def test_a_receivers_body_is_not_read(tmp_path: Path) -> None:
    with raw_receiver(endless_body) as server:
        delivery = await one_delivery(tmp_path, server.url, webhook_allow_private=True,
                                      webhook_timeout_s=2)  # fmt: skip
        time.sleep(0.2)  # the receiver notices the closed connection
        assert delivery["error"] is None  # delivered: the 200 is what counts
        assert delivery["seconds"] < 2
        # What the kernel buffers is all that left the receiver; nowhere near its 64 MiB.
        assert server.sent < 16 << 20


async def test_one_timeout_bounds_the_whole_delivery(tmp_path: Path) -> None:
    with raw_receiver(trickled_headers) as server:
        delivery = await one_delivery(tmp_path, server.url, webhook_allow_private=True,
                                      webhook_timeout_s=0.5, webhook_retries=0)  # fmt: skip
    assert delivery["error"] == "failed"
    assert delivery["seconds"] < 2.5
    assert server.requests == 1


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


def test_a_signature_is_the_receivers_to_check_and_each_tenant_signs_with_its_own_key() -> None:
    body = b'{"event":"job.finished"}'
    alice, bob = tenant_secret(SECRET, "alice"), tenant_secret(SECRET, "bob")
    assert alice == tenant_secret(SECRET, "alice") != bob
    assert SECRET not in alice
    header = signature(alice, 1_700_000_000, body)
    stamp, mac = (part.split("=", 1)[1] for part in header.split(","))
    expected = hmac.new(alice.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert (stamp, mac) == ("1700000000", expected)
    assert signature(alice, 1_700_000_001, body) != header  # the time is signed too


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "example.com/hook", "http://[::1/hook", "https://:80/x"]
)
def test_a_webhook_url_must_be_http_with_a_host_and_is_never_echoed(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_url(url)
    assert refused.value.field == "webhook_url"
    assert url not in refused.value.message


def _resolving(*addresses: str) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    "addresses",
    [("10.0.0.5",), ("93.184.215.14", "127.0.0.1"), ("169.254.169.254",), ("::1",),
     ("fd00::1",), ("224.0.0.1",)],
    ids=["private", "one-of-two-loopback", "metadata", "v6-loopback", "v6-private", "multicast"],
)  # fmt: skip
async def test_a_host_with_any_non_public_address_is_refused_unless_allowed(
    addresses: tuple[str, ...],
) -> None:
    url = "https://hooks.example.com/x"
    with pytest.raises(InvalidRequest, match="private, loopback or link-local"):
        await check_target(url, False, _resolving(*addresses))
    allowed = await check_target(url, True, _resolving(*addresses))
    assert allowed.addresses == addresses


async def test_a_public_host_is_connected_to_at_the_checked_addresses_once_each() -> None:
    target = await check_target(
        "https://hooks.example.com:8443/x", False, _resolving("93.184.215.14", "93.184.215.14")
    )
    assert (target.url.host, target.url.port, target.addresses) == (
        "hooks.example.com", 8443, ("93.184.215.14",),
    )  # fmt: skip


async def test_a_refused_target_is_an_attempt_that_will_not_be_retried() -> None:
    attempt = await deliver(
        "https://hooks.example.com/x", "key", b"{}", delivery_id="dl_1", attempt=1,
        timeout_s=1, allow_private=False, resolve=_resolving("10.1.2.3"),
    )  # fmt: skip
    assert (attempt.delivered, attempt.refused, attempt.status_code) == (False, True, None)
    unresolved = await deliver(
        "https://hooks.example.com/x", "key", b"{}", delivery_id="dl_1", attempt=1,
        timeout_s=1, allow_private=False, resolve=_resolving(),
    )  # fmt: skip
    assert unresolved.refused
