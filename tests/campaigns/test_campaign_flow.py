"""A campaign from create to completed on the simulated carrier, time driven by the test."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from sqlalchemy import select

from callfleet.calls.models import Call
from callfleet.campaigns.models import Enrollment
from tests.campaigns.helpers import drive, fresh_monday, setup_campaign, us_phone
from tests.conftest import DbHandle, TeamCtx

SEED_FIELDS = {"id", "team_id", "assistant_id", "company_id", "name", "status",
               "call_window_start", "call_window_end", "call_window_timezone",
               "max_concurrent_calls", "total_contacts", "contacts_called",
               "contacts_completed", "contacts_answered", "created_at", "updated_at",
               "from_number", "description"}


async def _campaign(client: httpx.AsyncClient, t: TeamCtx, cid: str) -> dict[str, Any]:
    r = await client.get(f"/api/crm/campaigns/{cid}", headers=t.headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["campaign"])


async def test_campaign_runs_to_completion(app: Any, client: httpx.AsyncClient,
                                           database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app)
    carrier = app.state.carrier
    contacts: list[dict[str, Any]] = []
    for i in range(12):
        contacts.append({"firstName": f"P{i}", "lastName": "Test", "phone": us_phone(i)})
    contacts.append({"firstName": "No", "lastName": "Phone"})
    contacts.append({"firstName": "Dnc", "lastName": "Flag", "phone": us_phone(50),
                     "doNotCall": True})
    behaviours = ["answer", "answer", "busy", "no_answer", "voicemail", "answer", "decline",
                  "failed", "answer", "no_answer", "answer", "answer"]
    for i, b in enumerate(behaviours):
        seq = [b] if b == "answer" else [b, "answer"]
        await carrier.set_profile(us_phone(i), seq, persona="opt_out" if i == 5 else
                                  "interested")
    cid, ids_ = await setup_campaign(client, database, team, contacts, maxConcurrentCalls=2,
                                     retryDelayMinutes=30, maxAttemptsPerContact=3)
    c = await _campaign(client, team, cid)
    assert SEED_FIELDS <= set(c)
    assert c["status"] == "draft" and c["total_contacts"] == 14
    assert c["contacts_skipped"] == 1  # the do-not-call contact is enrolled as skipped

    r = await client.post(f"/api/crm/campaigns/{cid}/run",
                          json={"accountSlug": team.slug, "dryRun": True}, headers=team.headers)
    body = r.json()
    assert r.status_code == 200 and body["dryRun"] is True
    assert body["started"] == 2 and len(body["calls"]) == 2
    assert set(body["calls"][0]) == {"contact_id", "to", "from"}
    assert body["failed"] == 2 and len(body["errors"]) == 2
    assert (await _campaign(client, team, cid))["status"] == "draft"

    r = await client.post(f"/api/crm/campaigns/{cid}/run",
                          json={"accountSlug": team.slug, "maxCalls": 1}, headers=team.headers)
    body = r.json()
    assert body["started"] == 1 and body["dryRun"] is False, body
    assert body["message"] == "Started 1 call"
    assert any("has no phone number" in e for e in body["errors"])
    assert any("do-not-call" in e for e in body["errors"])

    async def done() -> bool:
        return (await _campaign(client, team, cid))["status"] == "completed"

    await drive(app, done)
    c = await _campaign(client, team, cid)
    async with database.db.session(write=False) as s:
        enrollments = list(await s.scalars(select(Enrollment).where(
            Enrollment.campaign_id == cid)))
        calls = list(await s.scalars(select(Call).where(Call.campaign_id == cid)))
    assert all(e.status in ("completed", "failed", "skipped") for e in enrollments)
    assert all(call.status == "ended" for call in calls)
    # counters equal a recount from the call records
    called = {call.enrollment_id for call in calls}
    answered = {call.enrollment_id for call in calls if call.outcome == "answered"}
    assert c["contacts_called"] == len(called) == 12
    assert c["contacts_answered"] == len(answered)
    assert c["contacts_skipped"] == 2
    assert c["contacts_completed"] == 12
    per = Counter(call.enrollment_id for call in calls)
    assert max(per.values()) <= 3
    # retried ones answered on the second attempt
    assert c["contacts_answered"] == 11 - 1  # contact 5 opted out
    outcomes = Counter(call.outcome for call in calls)
    assert outcomes["opted_out"] == 1
    assert outcomes["busy"] == 1 and outcomes["voicemail"] == 1
    # the opted-out contact is now do-not-call
    r = await client.get(f"/api/crm/contacts/{ids_[5]}", headers=team.headers)
    assert r.json()["contact"]["do_not_call"] is True
    assert r.json()["contact"]["lead_status"] == "do_not_contact"
    r = await client.get(f"/api/crm/contacts/{ids_[0]}", headers=team.headers)
    assert r.json()["contact"]["lead_status"] == "contacted"
    # calls API
    r = await client.get("/api/calls", params={"campaignId": cid, "limit": 100},
                         headers=team.headers)
    assert r.json()["count"] == len(calls)
    answered_call = next(x for x in calls if x.outcome == "answered")
    r = await client.get(f"/api/calls/{answered_call.id}", headers=team.headers)
    detail = r.json()["call"]
    assert detail["messages"][0]["role"] == "assistant"
    assert detail["messages"][0]["text"].startswith("Hi P")
    types = [e["type"] for e in detail["events"]]
    assert types[0] == "call.initiated" and types[-1] == "call.completed"
    assert "call.answered" in types
    r = await client.get(f"/api/crm/campaigns/{cid}/dashboard", headers=team.headers)
    dash = r.json()["dashboard"]
    assert dash["enrollments_by_status"]["completed"] + dash["enrollments_by_status"][
        "failed"] == 12
    assert dash["active_calls"] == 0
