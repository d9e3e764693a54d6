"""Shared pieces of the webhook tests: a recording receiver behind httpx.MockTransport, a
sender wired to the test app's clock, event emission, and a reference signature verifier."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson

from callfleet.webhooks.outbox import emit
from callfleet.webhooks.sender import WebhookSender
from tests.conftest import DbHandle, TeamCtx, make_settings


@dataclass
class Received:
    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return dict(orjson.loads(self.body))


@dataclass
class Receiver:
    """Answers 200 unless a script for the URL says otherwise: a list of status codes or
    exceptions consumed one per request, or a callable ``(Received) -> int``."""

    got: list[Received] = field(default_factory=list)
    scripts: dict[str, list[Any]] = field(default_factory=dict)
    rules: dict[str, Callable[[Received], int]] = field(default_factory=dict)
    # Real seconds to wait before answering (network latency), per request.
    latency: Callable[[Received], float] | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        rec = Received(str(request.url), dict(request.headers), await request.aread())
        self.got.append(rec)
        if self.latency is not None:
            await asyncio.sleep(self.latency(rec))
        script = self.scripts.get(rec.url)
        if script:
            step = script.pop(0)
            if isinstance(step, Exception):
                raise step
            return httpx.Response(int(step), text=f"scripted {step}")
        rule = self.rules.get(rec.url)
        if rule is not None:
            return httpx.Response(rule(rec), text="ruled")
        return httpx.Response(200, text="ok")

    def at(self, url: str) -> list[Received]:
        return [r for r in self.got if r.url == url]


def new_url() -> str:
    return f"https://hooks.example.test/{uuid.uuid4().hex}"


def make_sender(app: Any, database: DbHandle, receiver: Receiver, **overrides: Any
                ) -> WebhookSender:
    settings = make_settings(database.url, **overrides)
    return WebhookSender(database.db, app.state.clock, settings,
                         transport=httpx.MockTransport(receiver), rng=random.Random(7))


async def drain(sender: WebhookSender, limit: int = 200) -> None:
    """Run passes until one does nothing (the shared test database has other teams' events)."""
    for _ in range(limit):
        if not await sender.tick():
            return
    raise AssertionError("the sender never went idle")


async def emit_events(database: DbHandle, team_id: str, at: datetime,
                      *events: tuple[str, str | None, dict[str, Any]]) -> list[str]:
    async with database.db.session() as s:
        out = [emit(s, team_id, kind, data, at, subject_id=subject)
               for kind, subject, data in events]
        await s.commit()
    return out


async def create_webhook(client: httpx.AsyncClient, t: TeamCtx, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/webhooks", json={"url": new_url(), **body}, headers=t.headers)
    assert r.status_code == 201, r.text
    return dict(r.json()["webhook"])


def reference_verify(secret: str, header: str, body: bytes, now: float,
                     tolerance: float = 300) -> bool:
    """Written from docs/webhooks.md, independently of callfleet.webhooks.signing."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        k, _, v = part.partition("=")
        fields.setdefault(k.strip(), []).append(v.strip())
    if len(fields.get("t", [])) != 1 or not fields.get("v1"):
        return False
    t = int(fields["t"][0])
    if abs(now - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for v in fields["v1"])


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One HTTP/1.1 request with a Content-Length, for the tests' raw servers: its head,
    headers (lower-case names) and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (
        line.partition(b":") for line in head.split(b"\r\n")[1:] if line)}
    return head, headers, await reader.readexactly(int(headers.get(b"content-length", b"0")))
