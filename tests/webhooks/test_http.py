"""The webhook sender's HTTP/1.1 transport (webhooks/http.py) against a real local server:
kept-alive connections, the per-origin limit, bodies by length and chunked, servers that
close connections, timeouts, and TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from callfleet.webhooks.http import KeepAliveTransport
from tests.webhooks.helpers import read_request

Answer = Callable[[bytes], bytes]  # request head -> raw response (b"" = close silently)


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
            + extra + b"\r\n" + body)


@dataclass
class Server:
    """A raw HTTP/1.1 server: each request's head is passed to ``answer``."""

    answer: Answer = field(default=lambda head: ok())
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    port: int = 0
    ssl_context: ssl.SSLContext | None = None
    delay: float = 0.0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head, _, body = await read_request(reader)
                self.bodies.append(body)
                self.heads.append(head)
                if self.delay:
                    await asyncio.sleep(self.delay)
                raw = self.answer(head)
                if not raw:
                    break
                writer.write(raw)
                await writer.drain()
                if b"connection: close" in raw.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://localhost:{self.port}/hook"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    s = await asyncio.start_server(srv.handle, "127.0.0.1", 0)
    srv.port = s.sockets[0].getsockname()[1]
    yield srv
    s.close()


def client(**kw: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=KeepAliveTransport(**kw),  # type: ignore[arg-type]
                             timeout=httpx.Timeout(2.0))


async def post(c: httpx.AsyncClient, url: str, body: bytes = b'{"a":1}') -> httpx.Response:
    r = await c.post(url, content=body, headers={"Content-Type": "application/json"})
    await r.aread()
    return r


async def test_requests_share_one_kept_alive_connection(server: Server) -> None:
    async with client() as c:
        for i in range(20):
            r = await post(c, server.url, f'{{"i":{i}}}'.encode())
            assert (r.status_code, r.text) == (200, "ok")
    assert server.connections == 1
    assert server.bodies[-1] == b'{"i":19}'
    head = server.heads[0].decode().lower()
    assert head.startswith("post /hook http/1.1\r\n")
    assert "host: localhost:" in head and "content-length: 7" in head
    assert "content-type: application/json" in head


async def test_at_most_max_per_origin_connections_at_once(server: Server) -> None:
    server.delay = 0.02
    async with client(max_per_origin=3) as c:
        results = await asyncio.gather(*(post(c, server.url) for _ in range(12)))
    assert all(r.status_code == 200 for r in results)
    assert server.most_open == 3 and server.connections == 3


async def test_connection_close_and_unread_bodies_are_not_reused(server: Server) -> None:
    partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 600
    answers = iter([ok(extra=b"Connection: close\r\n"), partial, ok(), ok()])
    server.answer = lambda head: next(answers)
    async with client() as c:
        assert (await post(c, server.url)).status_code == 200  # server closes after it
        async with c.stream("POST", server.url, content=b"{}") as r:  # the sender's 512 bytes
            async for chunk in r.aiter_bytes():
                if chunk:
                    break
        assert (await post(c, server.url)).status_code == 200
        assert (await post(c, server.url)).status_code == 200  # this one reuses
    assert server.connections == 3


async def test_chunked_answers_and_other_statuses(server: Server) -> None:
    answers = iter([
        (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
        b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ])
    server.answer = lambda head: next(answers)
    async with client() as c:
        r = await post(c, server.url)
        assert (r.status_code, r.text) == (201, "hello world")
        r = await post(c, server.url)
        assert (r.status_code, r.text) == (503, "busy")
        r = await post(c, server.url)  # redirects are not followed
        assert r.status_code == 302 and r.headers["location"] == "http://127.0.0.1:1/"
        assert (await post(c, server.url)).status_code == 204
    assert server.connections == 1


async def test_a_stale_kept_alive_connection_is_replaced_once(server: Server) -> None:
    answers = iter([ok(), b"", ok()])  # the second request finds the connection closed
    server.answer = lambda head: next(answers)
    async with client() as c:
        assert (await post(c, server.url)).status_code == 200
        assert (await post(c, server.url)).status_code == 200
    assert server.connections == 2


async def test_a_new_connection_closed_without_answer_is_an_error(server: Server) -> None:
    server.answer = lambda head: b""
    async with client() as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await post(c, server.url)
    assert server.connections == 1  # not retried on a fresh connection


async def test_timeouts_and_refused_connections(server: Server) -> None:
    server.delay = 1.0
    async with httpx.AsyncClient(transport=KeepAliveTransport(),
                                 timeout=httpx.Timeout(0.1)) as c:
        with pytest.raises(httpx.ReadTimeout):
            await post(c, server.url)
        with pytest.raises(httpx.ConnectError):
            await post(c, "http://127.0.0.1:1/hook")
        with pytest.raises(httpx.RemoteProtocolError):
            server.delay, server.answer = 0.0, lambda head: b"HTTP/1.1 200 OK\r\nbad\r\n\r\n"
            await post(c, server.url)


def self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    return server_ctx, client_ctx


async def test_https_verifies_the_certificate(tmp_path: Path) -> None:
    server_ctx, trusting = self_signed(tmp_path)
    srv = Server(ssl_context=server_ctx)
    s = await asyncio.start_server(srv.handle, "127.0.0.1", 0, ssl=server_ctx)
    srv.port = s.sockets[0].getsockname()[1]
    try:
        async with client(verify=trusting) as c:
            assert (await post(c, srv.url)).status_code == 200
            assert (await post(c, srv.url)).status_code == 200
        assert srv.connections == 1
        async with client() as c:  # the default trust store does not know this certificate
            with pytest.raises(httpx.ConnectError):
                await post(c, srv.url)
    finally:
        s.close()


async def test_a_resolve_hook_chooses_the_addresses(server: Server) -> None:
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        if host == "refused.example":
            raise httpx.ConnectError("refused by policy")
        return ["127.0.0.2", "127.0.0.1"]  # nothing listens on the first

    async with client(resolve=resolve) as c:
        r = await post(c, f"http://receiver.example:{server.port}/hook")
        assert r.status_code == 200
        with pytest.raises(httpx.ConnectError, match="refused by policy"):
            await post(c, f"http://refused.example:{server.port}/hook")
    assert asked == [("receiver.example", server.port), ("refused.example", server.port)]
    assert b"host: receiver.example:" in server.heads[0].lower()  # the name, not the address
