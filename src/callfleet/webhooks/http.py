"""The webhook sender's HTTP/1.1 transport: kept-alive connections per origin, for httpx.

``httpx``'s default transport spends most of a small request's CPU outside the network: its
pool scans every connection (a ``select`` on each socket) for every request, and each byte
written passes through several stream layers. A webhook sender makes thousands of small POSTs
a second to a few origins; this transport does the same exchange on an asyncio protocol with
the ``httptools`` parser (the one uvicorn uses) and a plain list of idle connections per
origin (docs/decisions/0021-webhook-throughput.md):

* one request at a time per connection; an idle connection is reused (last in, first out),
  else a new one is opened, at most ``max_per_origin`` open per origin (more wait);
* a response that was read to its end on a connection the server keeps alive returns the
  connection to the pool; anything else (``Connection: close``, a body not read to its end,
  an error, a timeout) closes it;
* a request on a reused connection that the server closed meanwhile (before any byte of the
  answer arrived) is sent once more on a new connection — a server may close an idle
  connection at any time;
* an optional ``resolve`` hook chooses the addresses a new connection may use (where an
  outbound address policy checks the address actually connected to);
* TLS verifies certificates as httpx does (``httpx.create_ssl_context``); redirects and
  proxies are the client's business (the sender follows no redirect; a proxy configured in
  the environment is used through httpx's own transport, as before).

It serves what the sender sends (POST with a body, small answers); ``HEAD`` and protocol
upgrades are refused.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httptools
import httpx

READ_CHUNK_LIMIT = 256 * 1024  # pause reading beyond this much unread body
Resolve = Callable[[str, int], Awaitable[list[str]]]


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request and its response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[None] | None = None
        self._data = asyncio.Event()
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._got_bytes = False
        self._error: BaseException | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._complete:
            if self._got_bytes:
                self._fail(httpx.RemoteProtocolError("server disconnected mid-response"))
            else:
                self._fail(_Disconnected("server disconnected without sending a response"))
        self._data.set()

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_CHUNK_LIMIT and self.transport is not None:
            self.transport.pause_reading()
        self._data.set()

    def on_message_complete(self) -> None:
        self._complete = True
        self._keep_alive = self._parser.should_keep_alive()  # (reset after this callback)
        self._data.set()

    # -- used by the transport

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._data.set()

    async def exchange(self, head: bytes, body: bytes, timeout: float | None
                       ) -> tuple[int, list[tuple[bytes, bytes]]]:
        assert self.transport is not None
        self.used = True
        self._parser = httptools.HttpResponseParser(self)
        self._headers, self._chunks, self._buffered = [], [], 0
        self._complete, self._keep_alive = False, False
        self._got_bytes, self._error = False, None
        self._head = asyncio.get_running_loop().create_future()
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        try:
            async with asyncio.timeout(timeout):
                await self._head
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the response") from None
        return self._parser.get_status_code(), self._headers

    async def body(self, timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                chunks, self._chunks, self._buffered = self._chunks, [], 0
                if self.transport is not None and not self.closed:
                    self.transport.resume_reading()
                for chunk in chunks:
                    yield chunk
                continue
            if self._complete:
                return
            if self._error is not None:
                raise self._error
            self._data.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._data.wait()
            except TimeoutError:
                raise httpx.ReadTimeout("timed out reading the response body") from None

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed and self._error is None

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class _Disconnected(httpx.RemoteProtocolError):
    """The server closed the connection before answering (a stale kept-alive connection)."""


class _Origin:
    """The connections to one scheme://host:port."""

    def __init__(self, limit: int) -> None:
        self.idle: list[_Connection] = []
        self.open = 0
        self.slots = asyncio.Semaphore(limit)


class _Body(httpx.AsyncByteStream):
    def __init__(self, transport: KeepAliveTransport, key: tuple[str, str, int],
                 conn: _Connection, timeout: float | None) -> None:
        self._transport, self._key, self._conn, self._timeout = transport, key, conn, timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._conn.body(self._timeout):
            yield chunk

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            self._transport._release(self._key, self._conn)


class KeepAliveTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_per_origin: int = 16, verify: ssl.SSLContext | bool = True,
                 resolve: Resolve | None = None) -> None:
        """``resolve(host, port)``, when given, names the addresses a new connection may
        use, in order (an address policy checks them there and raises to refuse); the
        request, its Host header, SNI and certificate checks keep the name."""
        self.max_per_origin = max(1, max_per_origin)
        self._verify = verify
        self._resolve = resolve
        self._ssl_context: ssl.SSLContext | None = None
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._closed = False

    @property
    def _ssl(self) -> ssl.SSLContext:
        """Built on the first https request (loading the CA bundle takes milliseconds)."""
        if self._ssl_context is None:
            self._ssl_context = (self._verify if isinstance(self._verify, ssl.SSLContext)
                                 else httpx.create_ssl_context(verify=self._verify))
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            raise httpx.UnsupportedProtocol("HEAD is not supported by this transport")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        port = url.port or (443 if scheme == "https" else 80)
        key = (scheme, url.host, port)
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        body = await request.aread()  # (the sender's bodies are bytes: no I/O)
        head = _head(request, body)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(self.max_per_origin)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await origin.slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection became free in time") from None
        try:
            while True:
                conn = self._take_idle(origin)
                fresh = conn is None
                if conn is None:
                    conn = await self._connect(key, timeouts.get("connect"))
                try:
                    status, headers = await conn.exchange(head, body, timeouts.get("read"))
                    break
                except _Disconnected:
                    conn.close()
                    self._forget(origin, conn)
                    if fresh:
                        raise
                except BaseException:
                    conn.close()
                    self._forget(origin, conn)
                    raise
        except BaseException:
            origin.slots.release()
            raise
        return httpx.Response(status, headers=headers,
                              stream=_Body(self, key, conn, timeouts.get("read")),
                              extensions={"http_version": b"HTTP/1.1"})

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        while origin.idle:
            conn = origin.idle.pop()
            if not conn.closed:
                return conn
            origin.open -= 1
        return None

    def _forget(self, origin: _Origin, conn: _Connection) -> None:
        origin.open -= 1

    async def _connect(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls = scheme == "https"
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host, port) if self._resolve else [host]
                error: OSError | None = None
                for address in addresses:
                    try:
                        _, conn = await loop.create_connection(
                            _Connection, address, port, ssl=self._ssl if tls else None,
                            server_hostname=host if tls else None)
                        break
                    except OSError as exc:
                        error = exc
                else:
                    raise error or OSError(f"{host} has no address")
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self._origins[key].open += 1
        return conn

    def _release(self, key: tuple[str, str, int], conn: _Connection) -> None:
        origin = self._origins.get(key)
        if origin is None:
            conn.close()
            return
        if conn.reusable and not self._closed:
            origin.idle.append(conn)
        else:
            conn.close()
            origin.open -= 1
        origin.slots.release()

    async def aclose(self) -> None:
        self._closed = True
        for origin in self._origins.values():
            for conn in origin.idle:
                conn.close()
            origin.idle.clear()
        self._origins.clear()


def _head(request: httpx.Request, body: bytes) -> bytes:
    url = request.url
    target = url.raw_path or b"/"
    lines = [request.method.encode() + b" " + target + b" HTTP/1.1"]
    has_length = False
    for name, value in request.headers.raw:
        if name.lower() == b"content-length":
            has_length = True
        elif name.lower() == b"transfer-encoding":
            continue  # the body is sent whole, with its length
        lines.append(name + b": " + value)
    if not has_length:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"
