"""The outbound URL policy (callfleet.outbound): every spelling of a refused address is
refused when a URL is written, through each API field that takes one (400 naming the field);
at connect time the address a name actually resolves to is checked (DNS rebinding, played
by patching the resolver), redirects to refused addresses are not followed, and the
operator's allowed networks let a network through."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from callfleet import outbound
from callfleet.conversation import tools
from callfleet.outbound import (
    OutboundAddressRefused,
    OutboundPolicy,
    OutboundURLRejected,
    check_url,
    parse_networks,
)
from callfleet.webhooks.models import WebhookDelivery
from callfleet.webhooks.sender import WebhookSender
from tests.conftest import REBIND, DbHandle, TeamCtx, make_settings

# (URL, what the refusal names): loopback, link-local, private, shared, ULA, unspecified,
# multicast, reserved, broadcast, local names, in the spellings resolvers accept.
REFUSED = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://2130706433/hook", "loopback"),            # decimal
    ("http://0x7f000001/hook", "loopback"),            # hex
    ("http://0x7f.0x0.0x0.0x1/hook", "loopback"),      # hex per part
    ("http://0177.0.0.1/hook", "loopback"),            # octal
    ("http://127.1/hook", "loopback"),                 # short form
    ("http://127.0.0.1./hook", "loopback"),            # trailing dot
    ("http://１２７。０。０。１/hook", "loopback"),        # full-width, ideographic dots
    ("http://[::1]:8080/hook", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),    # IPv4-mapped
    ("http://[::ffff:7f00:1]/hook", "loopback"),
    ("http://[::127.0.0.1]/hook", "loopback"),         # IPv4-compatible
    ("http://[64:ff9b::7f00:1]/hook", "loopback"),     # NAT64
    ("http://[2002:7f00:1::1]/hook", "loopback"),      # 6to4
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[fe80::1%25eth0]/hook", "link-local"),    # zone id
    ("http://10.0.0.5/hook", "private network"),
    ("http://172.16.3.4/hook", "private network"),
    ("http://192.168.1.1/hook", "private network"),
    ("http://3232235777/hook", "private network"),     # 192.168.1.1 in decimal
    ("http://100.64.0.1/hook", "carrier-grade NAT"),
    ("http://[fd12:3456::1]/hook", "unique local"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://0/hook", "unspecified"),
    ("http://[::]/hook", "unspecified"),
    ("http://224.0.0.251/hook", "multicast"),
    ("http://[ff02::1]/hook", "multicast"),
    ("http://240.0.0.1/hook", "reserved"),
    ("http://255.255.255.255/hook", "broadcast"),
    ("http://localhost:8000/hook", "local host"),
    ("http://api.localhost/hook", "local host"),
    ("http://metadata.google.internal/computeMetadata", "local host"),
    ("http://printer.local/hook", "local host"),
    ("http://intranet/hook", "local host"),
    ("http://hooks.example.com@127.0.0.1/hook", "credentials"),
    ("http://127.0.0.1\\@hooks.example.com/hook", "backslash"),
    ("ftp://hooks.example.com/hook", "http://"),
    ("http://08.0.0.1/hook", "not one"),
]
ACCEPTED = ["https://hooks.example.com/callfleet", "http://8.8.8.8:8080/x",
            "https://[2606:4700:4700::1111]/x", "https://llm.example.org/v1"]


# ---------------------------------------------------------------- pure checks


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_every_spelling_is_refused(url: str, why: str) -> None:
    with pytest.raises(OutboundURLRejected, match=why):
        check_url(url)


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_urls_pass(url: str) -> None:
    assert check_url(url) == url


def test_allowed_networks_let_a_network_through() -> None:
    allowed = parse_networks("127.0.0.0/8, 10.1.0.0/16")
    for url in ("http://127.0.0.1:9/", "http://2130706433/", "http://[::ffff:127.0.0.1]/",
                "http://10.1.2.3/", "http://localhost:9/"):
        assert check_url(url, allowed=allowed)
    with pytest.raises(OutboundURLRejected, match="private network"):
        check_url("http://10.2.0.1/", allowed=allowed)
    with pytest.raises(OutboundURLRejected, match="link-local"):
        check_url("http://169.254.169.254/", allowed=allowed)


REFUSED_NETS = [n for n, _ in outbound.REFUSED_V4]


def spellings(ip: ipaddress.IPv4Address) -> list[str]:
    n = int(ip)
    a, b, c, d = ip.packed
    return [str(ip), str(n), hex(n), f"0{oct(n)[2:]}", f"{a}.{(b << 16) | (c << 8) | d}",
            f"{a}.{b}.{(c << 8) | d}", ".".join(f"0{x:o}" for x in ip.packed),
            ".".join(hex(x) for x in ip.packed), f"[::ffff:{ip}]", f"[64:ff9b::{ip}]",
            f"[2002:{a:02x}{b:02x}:{c:02x}{d:02x}::1]"]


@given(st.sampled_from(REFUSED_NETS), st.integers(min_value=0))
def test_any_spelling_of_a_refused_ipv4_address_is_refused(net: Any, offset: int) -> None:
    ip = net[offset % net.num_addresses]
    for host in spellings(ip):
        with pytest.raises(OutboundURLRejected):
            check_url(f"http://{host}/x")


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_global_ipv4_addresses_pass_in_every_spelling(n: int) -> None:
    ip = ipaddress.IPv4Address(n)
    if outbound.refusal(ip) is not None:
        return
    for host in spellings(ip)[:8]:  # IPv4 spellings (the IPv6 ones embed, checked above)
        assert check_url(f"http://{host}/x")


# ---------------------------------------------------------------- write time, per API field


async def _write_paths(client: httpx.AsyncClient, t: TeamCtx, url: str
                       ) -> list[tuple[str, httpx.Response]]:
    """Write ``url`` through every field that takes one: (field, response)."""
    h = t.headers
    wh = await client.post("/api/webhooks", headers=h, json={"url": ACCEPTED[0]})
    asst = await client.post("/api/assistants", headers=h, json={"teamId": t.id, "name": "A"})
    assert wh.status_code == 201 and asst.status_code == 201, (wh.text, asst.text)
    wh_id, asst_id = wh.json()["webhook"]["id"], asst.json()["assistant"]["id"]
    return [
        ("url", await client.post("/api/webhooks", headers=h, json={"url": url})),
        ("url", await client.patch(f"/api/webhooks/{wh_id}", headers=h, json={"url": url})),
        ("settings.llmBaseUrl", await client.patch("/api/team", headers=h, json={
            "settings": {"llmBaseUrl": url}})),
        ("llmBaseUrl", await client.post("/api/assistants", headers=h, json={
            "teamId": t.id, "name": "B", "llmBaseUrl": url})),
        ("tools.0.url", await client.patch(f"/api/assistants/{asst_id}", headers=h, json={
            "tools": [{"name": "lookup", "url": url}]})),
    ]


@pytest.mark.parametrize(("url", "why"), REFUSED)
async def test_every_url_field_refuses_every_spelling(
        client: httpx.AsyncClient, team: TeamCtx, url: str, why: str) -> None:
    for name, r in await _write_paths(client, team, url):
        assert r.status_code == 400, (name, r.text)
        body = r.json()
        assert body["success"] is False and name in body["details"], (name, body)
        assert why in body["error"], (name, body)


async def test_allowed_networks_apply_to_every_url_field(
        client: httpx.AsyncClient, team: TeamCtx, allow_loopback: None) -> None:
    for name, r in await _write_paths(client, team, "http://127.0.0.1:9/hook"):
        assert r.status_code in (200, 201), (name, r.text)
    for name, r in await _write_paths(client, team, "http://10.0.0.1/hook"):
        assert r.status_code == 400 and "private network" in r.json()["error"], (name, r.text)


# ---------------------------------------------------------------- connect time


@dataclass
class Receiver:
    """An HTTP server on a loopback address; answers 200, or redirects to ``redirect``."""

    host: str = "127.0.0.1"
    redirect: str | None = None
    tls: ssl.SSLContext | None = None
    paths: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # Host headers received

    def __post_init__(self) -> None:
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def do_GET(self) -> None:
                rx.paths.append(self.path)
                rx.hosts.append(self.headers.get("Host", ""))
                self.send_response(307 if rx.redirect else 200)
                if rx.redirect:
                    self.send_header("Location", rx.redirect)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


async def _deliveries(database: DbHandle, webhook_id: str) -> list[WebhookDelivery]:
    async with database.db.session(write=False) as s:
        return list(await s.scalars(select(WebhookDelivery)
                                    .where(WebhookDelivery.endpoint_id == webhook_id)))


async def _test_delivery(app: Any, client: httpx.AsyncClient, database: DbHandle, t: TeamCtx,
                         url: str, **settings: Any) -> WebhookDelivery:
    r = await client.post("/api/webhooks", headers=t.headers, json={"url": url})
    assert r.status_code == 201, r.text
    webhook_id = r.json()["webhook"]["id"]
    r = await client.post(f"/api/webhooks/{webhook_id}/test", headers=t.headers)
    assert r.status_code == 200, r.text
    sender = WebhookSender(database.db, app.state.clock, make_settings(database.url, **settings))
    try:
        for _ in range(20):
            if not await sender.tick():
                break
    finally:
        await sender.aclose()
    (delivery,) = await _deliveries(database, webhook_id)
    return delivery


async def test_webhook_to_a_name_that_rebinds_to_loopback_is_refused_and_logged(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        receiver: Receiver, rebinding_dns: None) -> None:
    d = await _test_delivery(app, client, database, team,
                             f"http://{REBIND}:{receiver.port}/hook")
    assert receiver.paths == []
    assert d.status == "pending" and d.attempts == 1  # retried later, like any failure
    assert d.last_error == (f"refused by the outbound policy: {REBIND} resolves to 127.0.0.1, "
                            "a loopback address (127.0.0.0/8)")
    r = await client.get(f"/api/webhooks/{d.endpoint_id}/deliveries", headers=team.headers)
    assert "refused by the outbound policy" in r.json()["deliveries"][0]["attempt_log"][0][
        "error"]


async def test_allowed_network_lets_the_delivery_through(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        receiver: Receiver, rebinding_dns: None) -> None:
    # The name exists only in the patched resolver: reaching the receiver proves the
    # connection went to the address that was checked.
    d = await _test_delivery(app, client, database, team,
                             f"http://{REBIND}:{receiver.port}/hook",
                             outbound_allowed_networks="127.0.0.1/32")
    assert d.status == "delivered" and receiver.paths == ["/hook"]


async def test_redirect_to_a_refused_address_is_not_followed(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        allow_loopback: None) -> None:
    inner = Receiver(host="127.0.0.2")  # loopback too, but outside the allowed 127.0.0.1/32
    outer = Receiver(redirect=f"http://127.0.0.2:{inner.port}/secret")
    try:
        d = await _test_delivery(app, client, database, team,
                                 f"http://127.0.0.1:{outer.port}/hook",
                                 outbound_allowed_networks="127.0.0.1/32")
        assert outer.paths == ["/hook"] and inner.paths == []
        assert d.last_status_code == 307 and d.status == "pending"
        # A client that follows redirects checks every hop at connect time.
        policy = OutboundPolicy(parse_networks("127.0.0.1/32"))
        async with policy.client(follow_redirects=True) as http:
            with pytest.raises(OutboundAddressRefused, match="127.0.0.2 is a loopback"):
                await http.get(f"http://127.0.0.1:{outer.port}/start")
        assert outer.paths == ["/hook", "/start"] and inner.paths == []
    finally:
        inner.close()
        outer.close()


async def test_proxy_variables_do_not_bypass_the_check(
        receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{receiver.port}")
    async with OutboundPolicy().client() as http:
        with pytest.raises(OutboundAddressRefused):
            await http.get(f"http://127.0.0.1:{receiver.port}/direct")
        with pytest.raises(httpx.ConnectError):  # not sent to the "proxy" either
            await http.get("http://unresolvable.invalid/via-proxy")
    assert receiver.paths == []


async def test_tool_at_a_rebinding_name_is_refused(receiver: Receiver,
                                                   rebinding_dns: None) -> None:
    tool = {"name": "lookup", "url": f"http://{REBIND}:{receiver.port}/tool", "headers": {}}
    async with OutboundPolicy().client() as http:
        ok, text = await tools.run_webhook(tool, {}, {"id": "call_x"}, http, 2.0)
    assert not ok and "refused" in text and "loopback" in text
    assert receiver.paths == []


def self_signed(name: str, tmp_path: Any) -> tuple[ssl.SSLContext, ssl.SSLContext, list[str]]:
    """A certificate for ``name``: the server's context (recording the SNI it is sent) and
    a client context that trusts only that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    sni: list[str] = []
    server.sni_callback = lambda _sock, server_name, _ctx: sni.append(server_name or "")
    return server, ssl.create_default_context(cafile=str(cert_file)), sni


async def test_tls_to_a_checked_address_keeps_the_name_for_sni_and_the_certificate(
        rebinding_dns: None, tmp_path: Any) -> None:
    server_ctx, client_ctx, sni = self_signed(REBIND, tmp_path)
    rx = Receiver(tls=server_ctx)
    try:
        policy = OutboundPolicy(parse_networks("127.0.0.1/32"))
        async with policy.client(verify=client_ctx) as http:
            r = await http.get(f"https://{REBIND}:{rx.port}/tls")
        # Connected to 127.0.0.1, yet the handshake named the host and the certificate for
        # the name was verified; the request carries the name too.
        assert r.status_code == 200 and rx.paths == ["/tls"]
        assert sni == [REBIND] and rx.hosts == [f"{REBIND}:{rx.port}"]
    finally:
        rx.close()
