"""End to end with a real carrier's protocol: ``callfleet serve`` in a subprocess, configured
only through the documented ``CALLFLEET_*`` variables, against the fake carriers run as their
own process (``python -m callfleet.testing.fakecarriers``), which answer the SDKs' REST calls
and post signed callbacks to ``CALLFLEET_PUBLIC_URL`` by themselves.

Per carrier: a number bought through the API, a small campaign dialed to completion with the
carrier's own callbacks (answered, busy, no answer, invalid number), and a forged callback
refused. SQLite only: the carrier path is the same on PostgreSQL (tests/carriers runs there).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_server import Server, free_port
from tests.test_cli import cli_env, one_json, run_cli


@contextmanager
def running_fakes(tmp_path: Path, *args: str) -> Iterator[str]:
    """``python -m callfleet.testing.fakecarriers`` as its own process (``args``: e.g.
    ``--media``), its URL once it answers."""
    port = free_port()
    log = open(tmp_path / "fake.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "callfleet.testing.fakecarriers", "--port", str(port),
         "--step", "0.02", *args], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/_fake/config", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                (tmp_path / "fake.log").read_text())
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def fake_carriers(tmp_path: Path) -> Iterator[str]:
    with running_fakes(tmp_path) as url:
        yield url


def poll(fn: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("provider", ["twilio", "telnyx"])
def test_serve_with_a_real_carrier_protocol(tmp_path: Path, fake_carriers: str,
                                            provider: str) -> None:
    config = httpx.get(f"{fake_carriers}/_fake/config").json()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = cli_env(
        tmp_path / "data", CALLFLEET_CARRIER=provider, CALLFLEET_PUBLIC_URL=public,
        CALLFLEET_TWILIO_ACCOUNT_SID=config["twilio_account_sid"],
        CALLFLEET_TWILIO_AUTH_TOKEN=config["twilio_auth_token"],
        CALLFLEET_TWILIO_API_BASE_URL=fake_carriers,
        CALLFLEET_TELNYX_API_KEY=config["telnyx_api_key"],
        CALLFLEET_TELNYX_PUBLIC_KEY=config["telnyx_public_key"],
        CALLFLEET_TELNYX_CONNECTION_ID=config["telnyx_connection_id"],
        CALLFLEET_TELNYX_API_BASE_URL=f"{fake_carriers}/v2",
        CALLFLEET_TWILIO_CALLS_PER_SECOND="20", CALLFLEET_TELNYX_CALLS_PER_SECOND="20",
        # New York numbers at whatever hour the test runs (the compliance engine checks the
        # hours in every time zone a number plausibly is in, the phone's included).
        CALLFLEET_LEGAL_HOURS_START="00:00", CALLFLEET_LEGAL_HOURS_END="23:59")
    team = one_json(run_cli(tmp_path, env, "team", "create", "--name", "Acme", "--json").stdout)
    server = Server(env, tmp_path, "127.0.0.1", port).start()
    try:
        server.wait_ready()
        h = {"Authorization": f"Bearer {team['api_key']}"}
        api = httpx.Client(base_url=public, headers=h, timeout=30)
        # The test calls New York numbers at whatever hour it runs: informational calls, exempt
        # from the telemarketing calling hours once the team's owner says so (docs/compliance.md).
        api.patch("/api/compliance/settings",
                  json={"timeRulesForAllPurposes": False}).raise_for_status()
        fake = httpx.Client(base_url=fake_carriers, timeout=30)
        number = "+16465550177"
        fake.post("/_fake/stock", json={"carrier": provider, "numbers": [number]})
        r = api.post("/api/phone-numbers/search",
                     json={"filters": {"countryCode": "US", "areaCode": "646"}})
        assert r.status_code == 200 and r.json()["provider"] == provider, r.text
        r = api.post("/api/phone-numbers/purchase",
                     json={"teamId": team["team_id"], "phoneNumber": number})
        assert r.status_code == 201, r.text
        pn = r.json()["phone_number"]
        assert pn["provider"] == provider
        r = api.post("/api/assistants", json={"teamId": team["team_id"], "name": "Setter",
                                              "templateId": "outbound-setter"})
        assert r.status_code == 201, r.text
        assistant = r.json()["assistant"]["id"]
        r = api.put(f"/api/assistants/{assistant}/phone-numbers",
                    json={"phoneNumberIds": [pn["id"]]})
        assert r.status_code == 200, r.text
        r = api.post("/api/crm/companies", json={"teamId": team["team_id"], "name": "Globex"})
        company = r.json()["company"]["id"]
        plan = {"+12125550101": "answer", "+12125550102": "answer", "+12125550103": "busy",
                "+12125550104": "no_answer", "+12125550105": "invalid"}
        fake.post("/_fake/behave", json=plan)
        contacts = []
        # A zone where it is midday now, inside the legal calling hours whenever this runs.
        shift = max(-12, min(14, 12 - time.gmtime().tm_hour))
        zone = f"Etc/GMT{-shift:+d}" if shift else "UTC"
        for i, phone in enumerate(plan):
            r = api.post("/api/crm/contacts", json={
                "teamId": team["team_id"], "companyId": company, "firstName": f"C{i}",
                "lastName": "E2e", "phone": phone, "timezone": zone})
            assert r.status_code == 201, r.text
            contacts.append(r.json()["contact"]["id"])
        r = api.post("/api/crm/campaigns", json={
            "teamId": team["team_id"], "assistantId": assistant, "companyId": company,
            "fromNumberIds": [pn["id"]], "name": "E2E", "callWindowStart": "00:00",
            "callWindowEnd": "23:59", "callWindowTimezone": "UTC",
            "maxAttemptsPerContact": 1, "maxConcurrentCalls": 10})
        assert r.status_code == 201, r.text
        cid = r.json()["campaign"]["id"]
        api.post(f"/api/crm/campaigns/{cid}/contacts", json={"contactIds": contacts})
        r = api.post(f"/api/crm/campaigns/{cid}/run", json={"accountSlug": team["account_slug"]})
        assert r.status_code == 200, r.text
        assert r.json()["started"] == len(plan), r.text

        def done() -> bool:
            c = api.get(f"/api/crm/campaigns/{cid}").json()["campaign"]
            return c["status"] == "completed"

        poll(done, "the campaign to complete")
        calls = api.get("/api/calls", params={"campaignId": cid}).json()["calls"]
        outcomes = {c["to_number"]: c["outcome"] for c in calls}
        assert outcomes == {"+12125550101": "answered", "+12125550102": "answered",
                            "+12125550103": "busy", "+12125550104": "no_answer",
                            "+12125550105": "invalid_number"}, outcomes
        assert all(c["carrier"] == provider for c in calls)
        dialed = fake.get("/_fake/calls").json()["calls"]
        assert len(dialed) == 4  # the invalid number was refused at the dial, none twice
        # A forged callback (no signature) is refused and changes nothing.
        path = ("/carriers/twilio/status?call=" + calls[0]["id"] if provider == "twilio"
                else "/carriers/telnyx/webhook")
        r = httpx.post(public + path, data={"CallStatus": "busy"}, timeout=10)
        assert r.status_code == 401, r.text
    finally:
        server.stop()
