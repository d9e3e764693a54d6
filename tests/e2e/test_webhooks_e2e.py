"""End to end: the real ``callfleet serve`` runs a 30-contact campaign on the simulated
carrier (time scaled) and delivers its events to a real HTTP receiver in a thread, which
fails the first deliveries (500s, and answers slower than the configured timeout). The
server is SIGKILLed mid-campaign and restarted. Afterwards every event the outbox holds for
the team was received and processed once by the deduplicating receiver, every signature is
valid, and each subject's events were first processed in outbox order (docs/webhooks.md).

Runs on SQLite and, with ``CALLFLEET_TEST_POSTGRES_URL``, on PostgreSQL. Nothing sleeps for
the product's time; the waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callfleet.db.session import open_database
from callfleet.webhooks.models import WebhookDelivery
from callfleet.webhooks.outbox import OutboxEvent
from tests.e2e.test_server import Deployment, Server, deployment, launch, servers  # noqa: F401
from tests.test_cli import one_json, run_cli

SCALE = 600
TIMEOUT = 1.0
CONTACTS = 30
# The receiver's answers to its first requests: a 500 (not processed), or processed but
# answered after the sender's timeout (so the sender retries and the receiver dedupes).
SCRIPT = ["500", "slow", "500", "slow", "500", "500", "slow", "500"]


class Receiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secret = ""
        self.requests = 0
        self.seen: set[str] = set()
        self.processed: list[tuple[str, str]] = []  # (event id, subject) in processing order
        self.duplicates = 0
        self.bad_signatures: list[str] = []

    @staticmethod
    def subject(event: dict[str, Any]) -> str:
        data = event["data"]
        for key in ("call", "campaign", "contact"):
            if isinstance(data.get(key), dict) and data[key].get("id"):
                return str(data[key]["id"])
        return ""

    def verify(self, header: str, body: bytes) -> bool:
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        t = int(parts.get("t", "0"))
        expected = hmac.new(self.secret.encode(), f"{t}.".encode() + body,
                            hashlib.sha256).hexdigest()
        return abs(time.time() - t) <= 300 and hmac.compare_digest(expected,
                                                                    parts.get("v1", ""))

    def handle(self, headers: Any, body: bytes) -> tuple[int, float]:
        """Returns (status, seconds to wait before answering)."""
        if len(body) != int(headers.get("Content-Length", "0")):
            return 400, 0.0  # cut off by the SIGKILL: never processed
        if not self.verify(headers.get("Callfleet-Signature", ""), body):
            with self.lock:
                self.bad_signatures.append(f"{headers.get('Callfleet-Event-Id')}: {len(body)} "
                                           f"of {headers.get('Content-Length')} bytes")
            return 400, 0.0
        event = json.loads(body)
        assert event["id"] == headers["Callfleet-Event-Id"]
        with self.lock:
            step = SCRIPT[self.requests] if self.requests < len(SCRIPT) else "ok"
            self.requests += 1
            if step == "500":
                return 500, 0.0
            if event["id"] in self.seen:
                self.duplicates += 1
            else:  # process once: dedupe on the stable event id
                self.seen.add(event["id"])
                self.processed.append((event["id"], self.subject(event)))
        return 200, (TIMEOUT * 1.8 if step == "slow" else 0.0)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rx = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, delay = rx.handle(self.headers, body)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the sender gave up waiting

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rx, f"http://127.0.0.1:{server.server_address[1]}/hooks/callfleet"
    finally:
        server.shutdown()
        server.server_close()


async def _setup(http: httpx.AsyncClient, team_id: str, url: str,
                 rx: Receiver) -> tuple[str, str]:
    async def ok(r: httpx.Response, status: int = 201) -> dict[str, Any]:
        assert r.status_code == status, r.text
        return dict(r.json())

    wh = (await ok(await http.post("/api/webhooks", json={"teamId": team_id, "url": url})))
    rx.secret = wh["webhook"]["secret"]  # before anything emits an event
    company = (await ok(await http.post("/api/crm/companies",
                                        json={"teamId": team_id, "name": "Hooked Inc"})))
    company_id = company["company"]["id"]
    imported = await ok(await http.post("/api/crm/contacts/import", json={
        "teamId": team_id, "companyId": company_id,
        "contacts": [{"firstName": f"C{i}", "lastName": "Hook",
                      "phone": f"+1212{2000000 + i:07d}", "timezone": "America/New_York"}
                     for i in range(CONTACTS)]}), 200)
    assert imported["imported"] == CONTACTS, imported
    contacts = (await ok(await http.get("/api/crm/contacts", params={
        "teamId": team_id, "limit": "100"}), 200))["contacts"]
    assistant = (await ok(await http.post("/api/assistants", json={
        "teamId": team_id, "name": "Setter", "templateId": "outbound-setter"})))["assistant"]
    offer = (await ok(await http.post("/api/phone-numbers/search", json={
        "filters": {"countryCode": "US", "limit": 2}}), 200))["numbers"]
    numbers = []
    for n in offer[:2]:
        bought = await ok(await http.post("/api/phone-numbers/purchase", json={
            "teamId": team_id, "phoneNumber": n["phoneNumber"]}))
        numbers.append(bought["phone_number"]["id"])
    await ok(await http.post(f"/api/assistants/{assistant['id']}/phone-numbers",
                             json={"phoneNumberIds": numbers}), 200)
    campaign = (await ok(await http.post("/api/crm/campaigns", json={
        "teamId": team_id, "assistantId": assistant["id"], "companyId": company_id,
        "fromNumberIds": numbers, "name": "Webhooks e2e", "callWindowStart": "00:00",
        "callWindowEnd": "23:59", "callWindowTimezone": "America/New_York",
        "maxConcurrentCalls": 6, "maxAttemptsPerContact": 2, "retryDelayMinutes": 5})))
    campaign_id = campaign["campaign"]["id"]
    await ok(await http.post(f"/api/crm/campaigns/{campaign_id}/contacts",
                             json={"contactIds": [c["id"] for c in contacts]}), 200)
    await ok(await http.post(f"/api/crm/campaigns/{campaign_id}/run", json={}), 200)
    return str(wh["webhook"]["id"]), str(campaign_id)


def _db_url(dep: Deployment) -> str:
    return dep.env.get("CALLFLEET_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{(dep.data_dir / 'callfleet.db').as_posix()}")


async def _outbox(url: str, team_id: str) -> tuple[list[OutboxEvent], list[WebhookDelivery]]:
    db = open_database(url, null_pool=True)
    try:
        async with db.session(write=False) as s:
            events = list(await s.scalars(select(OutboxEvent).where(
                OutboxEvent.team_id == team_id).order_by(OutboxEvent.seq)))
            deliveries = list(await s.scalars(select(WebhookDelivery).where(
                WebhookDelivery.team_id == team_id)))
        return events, deliveries
    finally:
        await db.dispose()


async def test_webhooks_survive_sigkill_and_failing_receiver(
    deployment: Deployment, servers: list[Server],  # noqa: F811
    receiver: tuple[Receiver, str],
) -> None:
    dep = deployment
    rx, hook_url = receiver
    dep.env.update({
        "CALLFLEET_TIME_SCALE": str(SCALE), "CALLFLEET_SIM_INSTANT": "false",
        "CALLFLEET_LEGAL_HOURS_START": "00:00", "CALLFLEET_LEGAL_HOURS_END": "23:59",
        "CALLFLEET_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT),
        "CALLFLEET_WEBHOOK_LEASE_SECONDS": "3", "CALLFLEET_WEBHOOK_TICK_SECONDS": "0.05",
        "CALLFLEET_DIALER_TICK_SECONDS": "0.05", "CALLFLEET_LEASE_SECONDS": "3",
        "CALLFLEET_LOG_LEVEL": "WARNING",
    })
    started = time.monotonic()
    server = launch(servers, dep)
    server.wait_ready()
    out = one_json(run_cli(dep.workdir, dep.env, "team", "create", "--name", "Hooks",
                           "--json").stdout)
    team_id, auth = out["team_id"], {"Authorization": f"Bearer {out['api_key']}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=auth, timeout=30) as http:
        webhook_id, campaign_id = await _setup(http, team_id, hook_url, rx)

        # --- SIGKILL mid-campaign, once deliveries went through and a timeout was recorded
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(rx.processed) >= 25:
                log = (await http.get(f"/api/webhooks/{webhook_id}/deliveries",
                                      params={"limit": "1000"})).json()["deliveries"]
                if any((a["error"] or "").startswith("timed out")
                       for d in log for a in d["attempt_log"]):
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"no timeout recorded: {rx.requests} requests\n{server.log()[-3000:]}")
    server.kill()
    events_at_kill = len(rx.processed)
    server = launch(servers, dep)
    server.wait_ready()

    # --- wait for the campaign to finish and every event to be delivered
    url = _db_url(dep)
    status = "running"
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=server.base_url, headers=auth, timeout=30) as http:
        while time.monotonic() < deadline:
            status = (await http.get(f"/api/crm/campaigns/{campaign_id}")).json()[
                "campaign"]["status"]
            if status == "completed":
                events, deliveries = await _outbox(url, team_id)
                if (all(e.dispatched_at is not None for e in events)
                        and all(d.status == "delivered" for d in deliveries)
                        and len(rx.seen) >= len(events)):
                    break
            await asyncio.sleep(0.2)
    events, deliveries = await _outbox(url, team_id)
    assert status == "completed", server.log()[-3000:]
    assert events_at_kill < len(events)  # the kill really was mid-campaign

    # every outbox event received, processed once, with a valid signature
    assert not rx.bad_signatures
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids))
    assert rx.seen == set(ids), (len(rx.seen), len(ids))
    assert len(rx.processed) == len(ids)
    assert rx.duplicates >= 1  # the slow answers were retried and deduplicated
    assert {e.type for e in events} >= {"campaign.started", "campaign.completed",
                                        "call.initiated", "call.completed"}
    # one delivery per event, each delivered; the failed first attempts are in the log
    assert sorted(d.event_id for d in deliveries) == sorted(ids)
    assert all(d.status == "delivered" for d in deliveries)
    logged = [a for d in deliveries for a in d.attempt_log]
    assert any(a["status_code"] == 500 for a in logged)
    assert any((a["error"] or "").startswith("timed out") for a in logged)

    # per-subject order: each subject's events were first processed in outbox order
    expected: dict[str, list[str]] = defaultdict(list)
    for e in events:
        expected[e.subject_id or ""].append(e.id)
    seen_order: dict[str, list[str]] = defaultdict(list)
    subject_of = {e.id: e.subject_id or "" for e in events}
    for event_id, _ in rx.processed:
        seen_order[subject_of[event_id]].append(event_id)
    for subject, order in expected.items():
        assert seen_order[subject] == order, subject
    calls = [s for s in expected if s.startswith("call_")]
    assert len(calls) >= CONTACTS // 2
    server.stop()
    assert time.monotonic() - started < 120
