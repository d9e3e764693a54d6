"""Outbound HTTP to URLs a tenant chose: the SSRF policy (docs/security.md).

Every connection callfleet opens to a URL that a team set (webhook endpoints, an assistant's
or a team's ``llmBaseUrl``, custom tool URLs) goes through this module, in two steps:

* **write time** — :func:`check_url` refuses a URL whose host is an address callfleet must
  not reach (loopback, link-local, private, shared, unique-local, multicast, reserved,
  unspecified, broadcast, in any spelling: ``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
  ``[::ffff:127.0.0.1]``, NAT64, 6to4, ...) or a name that is local by definition
  (``localhost``, ``*.localhost``, ``*.local``, ``*.internal``, ``*.home.arpa``, names
  without a dot). Public-looking names are not resolved at write time: an answer then proves
  nothing about the answer at connect time.
* **connect time** — :func:`outbound_client` builds an ``httpx.AsyncClient`` whose network
  backend resolves the host itself, checks every address against the same rules and connects
  to the checked address only (the TLS handshake still uses the URL's host name for SNI and
  certificate checks). A name that resolves somewhere else than it did at write time (DNS
  rebinding) or a redirect hop to a refused address fails there, whatever the spelling.

The operator may allow networks (``CALLFLEET_OUTBOUND_ALLOWED_NETWORKS``, CIDRs): a
self-hosted model on 10.x, a receiver on 127.0.0.1 in tests. The operator's own settings
(``CALLFLEET_LLM_BASE_URL``) are trusted and never pass through here.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpcore
import httpx

from callfleet.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]


class OutboundURLRejected(ValueError):
    """A tenant-set URL callfleet will not connect to. ``str(exc)`` says why ("points at a
    private network address (10.0.0.0/8)"); ``field`` names the request field it came from
    (the API answers 400 with ``"<field> <why>"``: api/errors.py)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OutboundAddressRefused(OutboundURLRejected, httpx.ConnectError):
    """Raised at connect time: the host resolved to a refused address. It is an
    ``httpx.ConnectError`` too, so code that handles network failures handles it."""

    def __init__(self, message: str) -> None:
        httpx.ConnectError.__init__(self, message)


def _nets(*pairs: tuple[str, str]) -> list[tuple[Network, str]]:
    out = [(ipaddress.ip_network(net), what) for net, what in pairs]
    # Most specific first, so 255.255.255.255 reads "broadcast", not "reserved".
    return sorted(out, key=lambda p: -p[0].prefixlen)


REFUSED_V4 = _nets(
    ("0.0.0.0/8", "an unspecified address"),
    ("10.0.0.0/8", "a private network address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private network address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private network address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("255.255.255.255/32", "the broadcast address"),
)
REFUSED_V6 = _nets(
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/23", "an IETF protocol address"),
    ("2001:db8::/32", "a documentation address"),
    ("fc00::/7", "a unique local (ULA) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
# IPv6 ranges that carry an IPv4 address in their low 32 bits: judged by that address.
EMBEDDING_V4 = [ipaddress.IPv6Network(n) for n in (
    "::ffff:0:0/96",      # IPv4-mapped
    "::ffff:0:0:0/96",    # IPv4-translated (SIIT)
    "::/96",              # IPv4-compatible (deprecated)
    "64:ff9b::/96",       # NAT64, well-known prefix
)]
SIXTOFOUR = ipaddress.IPv6Network("2002::/16")

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".localdomain")
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


def parse_networks(text: str | Sequence[str] | None) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` -> networks (a bare address is a /32 or /128)."""
    items = text.split(",") if isinstance(text, str) else list(text or ())
    return tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip())


def embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4)."""
    if not isinstance(ip, ipaddress.IPv6Address) or int(ip) <= 1:
        return None
    if any(ip in net for net in EMBEDDING_V4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in SIXTOFOUR:
        return ip.sixtofour
    return None


def _allowed(ip: IPAddress, allowed: Sequence[Network]) -> bool:
    return any(ip.version == net.version and ip in net for net in allowed)


def refusal(ip: IPAddress, allowed: Sequence[Network] = ()) -> str | None:
    """Why callfleet must not connect to ``ip`` ("a loopback address (127.0.0.0/8)"), or
    None when it may."""
    if _allowed(ip, allowed):
        return None
    inner = embedded_v4(ip)
    if inner is not None:
        if _allowed(inner, allowed):
            return None
        why = refusal(inner, allowed)
        return f"{why}, embedded in {ip}" if why else None
    for net, what in REFUSED_V4 if ip.version == 4 else REFUSED_V6:
        if ip in net:
            return f"{what} ({net})"
    if ip.is_reserved or not ip.is_global or ip.is_multicast:
        return "a reserved address (not globally routable)"
    return None


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form a resolver accepts (``inet_aton``'s 1-4
    parts in decimal, octal or hex; IPv6 with or without a zone id), or None for a name.
    Raises OutboundURLRejected for a number that is no valid address."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise OutboundURLRejected(f"has an invalid IPv6 address {host[:60]!r}") from None
    parts = host.removesuffix(".").split(".")
    if not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    values: list[int] = []
    for p in parts:
        try:
            values.append(int(p[2:] or "0", 16) if p.startswith("0x")
                          else int(p, 8) if len(p) > 1 and p.startswith("0") else int(p))
        except ValueError:
            values = []
            break
    if not values or len(values) > 4 or any(v > 255 for v in values[:-1]) \
            or values[-1] >= 256 ** (5 - len(values)):
        raise OutboundURLRejected(f"has a host {host[:60]!r} that looks like an IPv4 address "
                                  "but is not one")
    number = 0
    for v in values[:-1]:
        number = number * 256 + v
    number = (number << (8 * (5 - len(values)))) + values[-1]
    return ipaddress.IPv4Address(number)


def local_name(host: str) -> bool:
    """Names that point into the server's own networks by definition."""
    name = host.removesuffix(".")
    return (name in ("localhost", "localhost.localdomain") or "." not in name
            or name.endswith(LOCAL_SUFFIXES))


@dataclass(frozen=True)
class SplitURL:
    url: str   # normalised: scheme and host lower-cased, no fragment
    host: str  # lower case, no brackets, IDNA-encoded


def split_url(value: str) -> SplitURL:
    """The syntax checks: http(s), a host, no credentials, no spaces, a valid port."""
    url = value.strip()
    if not url:
        raise OutboundURLRejected("is required")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise OutboundURLRejected("must not contain spaces or control characters")
    if "\\" in url:
        raise OutboundURLRejected("must not contain backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise OutboundURLRejected("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise OutboundURLRejected("must start with http:// or https://")
    if "@" in parts.netloc:
        raise OutboundURLRejected("must not contain credentials (user:password@); send them "
                                  "in a header instead")
    host = parts.hostname or ""
    if not host:
        raise OutboundURLRejected("must name a host")
    if port == 0:
        raise OutboundURLRejected("has an invalid port")
    if "%" in host and ":" not in host:
        raise OutboundURLRejected("must not percent-encode its host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise OutboundURLRejected("has an invalid host name") from None
    netloc = parts.netloc.lower() if ":" not in host else parts.netloc
    return SplitURL(urlunsplit((scheme, netloc, parts.path, parts.query, "")), host)


def check_host(host: str, allowed: Sequence[Network] = (),
               resolve: Callable[[str], list[str]] | None = None) -> None:
    """Refuse a host that is, or is named as, an address callfleet must not reach."""
    ip = ip_literal(host)
    if ip is not None:
        why = refusal(ip, allowed)
        if why:
            raise OutboundURLRejected(f"points at {why}")
        return
    if local_name(host):
        # Allowed only if the operator allowed the network the name resolves to.
        if allowed:
            addresses = (resolve or _resolve_now)(host)
            if any(refusal(ipaddress.ip_address(a.split("%", 1)[0]), allowed) is None
                   for a in addresses):
                return
        raise OutboundURLRejected(f"names a local host ({host[:60]}), which callfleet does "
                                  "not connect to")


def check_url(url: str, *, allowed: Sequence[Network] | None = None,
              field: str | None = None) -> str:
    """The write-time check of a tenant-set URL; returns it normalised. Raises
    OutboundURLRejected (a ValueError) with the reason and ``field``."""
    try:
        parts = split_url(url)
        check_host(parts.host, allowed or ())
    except OutboundURLRejected as exc:
        exc.field = field
        raise
    return parts.url


def allowed_networks(settings: Settings) -> tuple[Network, ...]:
    """The networks the operator allowed (``CALLFLEET_OUTBOUND_ALLOWED_NETWORKS``)."""
    return parse_networks(settings.outbound_allowed_networks)


def _resolve_now(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses a connection to ``host`` may use (tests patch this to play DNS)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# ---------------------------------------------------------------- connect time


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the policy in front of every TCP connection: resolve,
    check each address, connect to an address that passed (never to the name)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                permitted = await self.policy.permitted_addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        error: Exception | None = None
        for address in permitted:
            try:
                return await self.inner.connect_tcp(address, port, timeout=timeout,
                                                    local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise OutboundAddressRefused("unix sockets are not reachable from tenant URLs")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` (its request mapping and errors) over a connection pool
    whose network backend is :class:`GuardedBackend`. No proxies: a proxy would resolve the
    host itself, out of the policy's sight."""

    def __init__(self, policy: OutboundPolicy, *, verify: Any = True,
                 limits: httpx.Limits = DEFAULT_LIMITS, http2: bool = False) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, limits=limits, http2=http2, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True, http2=http2, network_backend=GuardedBackend(policy),
        )


@dataclass(frozen=True)
class OutboundPolicy:
    """The allowed networks (and, in tests, a resolver) of one process's outbound calls."""

    allowed: tuple[Network, ...] = ()
    resolver: Resolver | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(allowed_networks(settings))

    def check_url(self, url: str) -> str:
        return check_url(url, allowed=self.allowed)

    async def permitted_addresses(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and keep the addresses the policy allows; raises
        :class:`OutboundAddressRefused` when none is (what every connection goes to)."""
        addresses = await (self.resolver or resolve_host)(host, port)
        permitted: list[str] = []
        reason = ""
        for address in addresses:
            why = refusal(ipaddress.ip_address(address.split("%", 1)[0]), self.allowed)
            if why is None:
                permitted.append(address)
            elif not reason:
                literal = address.split("%", 1)[0] == host.split("%", 1)[0]
                reason = f"{host} is {why}" if literal else f"{host} resolves to {address}, {why}"
        if not permitted:
            raise OutboundAddressRefused(reason or f"{host} has no address")
        return permitted

    def client(self, **httpx_kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` that connects only where the policy allows. It follows
        no redirect unless ``follow_redirects=True`` is passed (each hop is checked at
        connect time either way) and ignores proxy environment variables. ``transport``
        replaces the guarded transport (tests' mock transports)."""
        limits = httpx_kwargs.pop("limits", DEFAULT_LIMITS)
        transport = httpx_kwargs.pop("transport", None) or GuardedTransport(
            self, verify=httpx_kwargs.pop("verify", True), limits=limits)
        httpx_kwargs.setdefault("follow_redirects", False)
        return httpx.AsyncClient(transport=transport, trust_env=False, **httpx_kwargs)


def outbound_client(settings: Settings, **httpx_kwargs: Any) -> httpx.AsyncClient:
    """The client for every request to a tenant-set URL (see :meth:`OutboundPolicy.client`)."""
    return OutboundPolicy.from_settings(settings).client(**httpx_kwargs)


def refused_reason(exc: BaseException | None) -> str | None:
    """The policy's reason when ``exc`` (or what caused it, e.g. inside an SDK) is a
    refusal; None otherwise."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OutboundURLRejected):
            return str(exc)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
