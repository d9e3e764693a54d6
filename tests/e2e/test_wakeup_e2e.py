"""End to end: idle loops wake on work created through the API, across processes.

The background loops are given 30 s ticks and a 30 s back-off cap, so a loop that had to
poll would act on new work only after up to 30 s. On SQLite one ``callfleet serve`` runs
the API and the loops (the in-process signal); on PostgreSQL ``callfleet serve --no-worker``
takes the API requests and a separate ``callfleet worker`` does the work, so a write
reaches the worker only through the database (LISTEN/NOTIFY). Each API write must reach a
real webhook receiver within 10 s: a contact change (the webhook sender), a campaign run
(the API dials; the worker's dialer delivers the simulated network's events) and a contact
added to the running campaign (the dialer claims it).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.e2e.test_server import (  # noqa: F401
    Deployment,
    Server,
    deployment,
    free_port,
    launch,
    servers,
)
from tests.test_cli import one_json, run_cli


class ApiOnly(Server):
    """``callfleet serve --no-worker``."""

    def start(self) -> ApiOnly:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callfleet.cli", "serve", "--no-worker",
                 "--host", self.host, "--port", str(self.port)],
                cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        return self


def start_worker(dep: Deployment) -> subprocess.Popen[bytes]:
    with open(dep.workdir / "worker.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "callfleet.cli", "worker"],
                                cwd=dep.workdir, env=dep.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


class Hooks:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: list[tuple[float, dict[str, Any]]] = []

    async def first(self, match: Any, since: float, timeout: float = 10.0) -> float:
        """Seconds from ``since`` until a matching event arrived (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # a bounded poll of the receiver
            with self.lock:
                for at, event in self.got:
                    if at >= since and match(event):
                        return at - since
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching webhook within {timeout} s: "
                             f"{[e['type'] for _, e in self.got][-20:]}")


@pytest.fixture
def hooks() -> Iterator[tuple[Hooks, str]]:
    rx = Hooks()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with rx.lock:
                rx.got.append((time.time(), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield rx, f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


async def test_idle_loops_wake_on_api_writes(
    deployment: Deployment, servers: list[Server],  # noqa: F811
    hooks: tuple[Hooks, str],
) -> None:
    dep = deployment
    rx, url = hooks
    dep.env.update({
        "CALLFLEET_DIALER_TICK_SECONDS": "30", "CALLFLEET_WEBHOOK_TICK_SECONDS": "30",
        "CALLFLEET_INTELLIGENCE_TICK_SECONDS": "30", "CALLFLEET_IDLE_MAX_SECONDS": "30",
        "CALLFLEET_SIM_INSTANT": "true", "CALLFLEET_SIM_MIX": "answer=100",
        "CALLFLEET_SIM_INVALID_PERCENT": "0", "CALLFLEET_LEGAL_HOURS_START": "00:00",
        "CALLFLEET_LEGAL_HOURS_END": "23:59", "CALLFLEET_LOG_LEVEL": "WARNING",
        "CALLFLEET_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",  # the receiver is on loopback
    })
    split = dep.backend == "postgres"
    worker: subprocess.Popen[bytes] | None = None
    if split:  # the API alone; the loops run in a worker process
        server = ApiOnly(dep.env, dep.workdir, "127.0.0.1", free_port())
        servers.append(server)
        server.start()
    else:
        server = launch(servers, dep)
    server.wait_ready()
    out = one_json(run_cli(dep.workdir, dep.env, "team", "create", "--name", "Wake",
                           "--json").stdout)
    team_id, auth = out["team_id"], {"Authorization": f"Bearer {out['api_key']}"}
    if split:
        worker = start_worker(dep)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=auth,
                                     timeout=30) as http:
            async def ok(r: Any, status: int = 200) -> dict[str, Any]:
                r = await r
                assert r.status_code == status, r.text
                return dict(r.json())

            # The test calls New York numbers at whatever hour it runs: informational calls, exempt
            # from the telemarketing calling hours once the team's owner says so (docs/compliance.md).
            await ok(http.patch("/api/compliance/settings",
                                json={"timeRulesForAllPurposes": False}))

            def post(path: str, **body: Any) -> Any:
                return http.post(path, json={"teamId": team_id, **body})

            await ok(post("/api/webhooks", url=url), 201)
            company = (await ok(post("/api/crm/companies", name="Wake Inc"), 201))["company"]
            contacts = [(await ok(post("/api/crm/contacts", companyId=company["id"],
                                       firstName=f"W{i}", lastName="Up",
                                       phone=f"+1212555{2000 + i}",
                                       timezone="America/New_York"), 201))["contact"]["id"]
                        for i in range(2)]
            assistant = (await ok(post("/api/assistants", name="Setter",
                                       templateId="outbound-setter"), 201))["assistant"]
            offer = (await ok(post("/api/phone-numbers/search",
                                   filters={"countryCode": "US", "limit": 1})))["numbers"]
            number = (await ok(post("/api/phone-numbers/purchase",
                                    phoneNumber=offer[0]["phoneNumber"]), 201))
            numbers = [number["phone_number"]["id"]]
            await ok(post(f"/api/assistants/{assistant['id']}/phone-numbers",
                          phoneNumberIds=numbers))
            campaign = (await ok(post(
                "/api/crm/campaigns", assistantId=assistant["id"], companyId=company["id"],
                fromNumberIds=numbers, name="Wake", callWindowStart="00:00",
                callWindowEnd="23:59", callWindowTimezone="America/New_York",
                maxAttemptsPerContact=1, noAutoComplete=True), 201))["campaign"]
            await ok(post(f"/api/crm/campaigns/{campaign['id']}/contacts",
                          contactIds=contacts[:1]))
            # Every loop has made its first pass and waits for its 30 s tick by now.
            await asyncio.sleep(3)

            t0 = time.time()
            await ok(http.patch(f"/api/crm/contacts/{contacts[0]}",
                                json={"teamId": team_id, "jobTitle": "CTO"}))
            await rx.first(lambda e: e["type"] == "contact.updated"
                           and e["data"]["contact"]["id"] == contacts[0], t0)

            t0 = time.time()
            await ok(post(f"/api/crm/campaigns/{campaign['id']}/run"))
            await rx.first(lambda e: e["type"] == "call.ringing"
                           and e["data"]["call"]["contact_id"] == contacts[0], t0)

            await asyncio.sleep(1)
            t0 = time.time()
            await ok(post(f"/api/crm/campaigns/{campaign['id']}/contacts",
                          contactIds=contacts[1:]))
            await rx.first(lambda e: e["type"] == "call.initiated"
                           and e["data"]["call"]["contact_id"] == contacts[1], t0)
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=30)
