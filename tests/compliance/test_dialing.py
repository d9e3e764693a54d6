"""The compliance engine in the dialer and the API: state hours, consent, caps across a team's
campaigns, the audit of every decision, waiting contacts by reason, settings, tenancy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.compliance.models import DialDecision
from callfleet.db.session import open_database
from callfleet.dialer.engine import Dialer
from callfleet.teams.service import create_key
from tests.campaigns.helpers import assistant_with_numbers, fresh_monday
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact, make_settings

_n = iter(range(1_000_000))


def phone(area: int) -> str:
    k = next(_n)
    return f"+1{area}{300 + k // 10000:03d}{k % 10000:04d}"


async def campaign(client: httpx.AsyncClient, database: DbHandle, t: TeamCtx,
                   contacts: list[dict[str, Any]], *, company: str | None = None,
                   run: bool = True, **fields: Any) -> tuple[str, list[str]]:
    company = company or await make_company(client, t)
    assistant, numbers = await assistant_with_numbers(database, t)
    if fields.pop("compliant", False) or fields.get("purpose") == "telemarketing":
        await compliant(client, database, t, assistant)
    ids = [(await make_contact(client, t, company, **c))["id"] for c in contacts]
    body = {"teamId": t.id, "assistantId": assistant, "companyId": company,
            "fromNumberIds": numbers, "name": "Compliance", "callWindowStart": "00:00",
            "callWindowEnd": "00:00", "callWindowTimezone": "UTC", "maxAttemptsPerContact": 5,
            "retryDelayMinutes": 1, **fields}
    r = await client.post("/api/crm/campaigns", json=body, headers=t.headers)
    assert r.status_code == 201, r.text
    cid = r.json()["campaign"]["id"]
    r = await client.post(f"/api/crm/campaigns/{cid}/contacts", json={"contactIds": ids},
                          headers=t.headers)
    assert r.status_code == 200, r.text
    if run:
        async with database.db.session() as s:
            await s.execute(update(Campaign).where(Campaign.id == cid).values(status="running"))
            await s.commit()
    return cid, ids


COMPLIANT_GREETING = ("Hi {{contact.first_name}}, this is an AI assistant calling for Acme "
                      "Solar. Say stop at any time and we will never call again.")


async def compliant(client: httpx.AsyncClient, database: DbHandle, t: TeamCtx,
                    assistant: str) -> None:
    """An assistant and team settings that pass the AI-voice telemarketing check."""
    async with database.db.session() as s:
        await s.execute(update(Assistant).where(Assistant.id == assistant)
                        .values(first_message=COMPLIANT_GREETING))
        await s.commit()
    r = await client.patch("/api/compliance/settings", json={
        "businessName": "Acme Solar", "callbackNumber": "+12125550100"}, headers=t.headers)
    assert r.status_code == 200, r.text


async def enrollment(database: DbHandle, cid: str) -> Enrollment:
    async with database.db.session(write=False) as s:
        e = await s.scalar(select(Enrollment).where(Enrollment.campaign_id == cid))
        assert e is not None
        return e


async def calls_to(database: DbHandle, number: str) -> int:
    async with database.db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(Call)
                                  .where(Call.to_number == number)) or 0)


async def test_florida_hours_defer_and_the_decision_is_recorded_and_readable(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    monday = fresh_monday(app, hour_utc=1)  # 20:00 in Miami (EST): Florida's hours are over
    number = phone(305)
    cid, (contact,) = await campaign(client, database, team, [{"phone": number}])
    await app.state.dialer.tick()
    e = await enrollment(database, cid)
    assert e.status == "pending" and e.reason == "state_hours:US-FL/hours"
    new_york = ZoneInfo("America/New_York")
    eight = datetime.combine(monday.astimezone(new_york).date() + timedelta(days=1), time(8),
                             new_york).astimezone(UTC)
    assert monday.astimezone(new_york).hour in (20, 21) and e.next_attempt_at == eight
    r = await client.get("/api/compliance/decisions", params={"contactId": contact},
                         headers=team.headers)
    assert r.status_code == 200, r.text
    (d,) = r.json()["decisions"]
    assert d["outcome"] == "defer" and d["reason"] == "state_hours"
    assert d["rules_fired"][0] == "US-FL/hours"
    assert d["table_version"] and d["purpose"] == "informational"
    assert d["jurisdictions"][0] == {"code": "US-FL", "source": "area_code_presumption",
                                     "detail": "305"}
    assert d["local_times"][0]["zone"] == "America/New_York"
    assert d["next_allowed_at"].startswith(eight.strftime("%Y-%m-%dT%H:00"))
    r = await client.get(f"/api/crm/campaigns/{cid}/dashboard", headers=team.headers)
    dash = r.json()["dashboard"]
    assert dash["purpose"] == "informational"
    assert dash["waiting_by_reason"] == [{"reason": "state_hours", "rule": "US-FL/hours",
                                          "count": 1,
                                          "text": "1 contact waiting for Florida hours"}]
    # Next morning the call is placed, and the placement is recorded with its call.
    app.state.clock.advance(seconds=12 * 3600)
    await app.state.dialer.tick()
    assert await calls_to(database, number) == 1
    r = await client.get("/api/compliance/decisions",
                         params={"contactId": contact, "outcome": "allow"}, headers=team.headers)
    (placed,) = r.json()["decisions"]
    assert placed["call_id"] and placed["reason"] is None and "US-FL/hours" in placed[
        "rules_applied"]


async def test_decisions_filters_errors_and_tenancy(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        other_team: TeamCtx) -> None:
    fresh_monday(app, hour_utc=1)
    cid, (contact,) = await campaign(client, database, team, [{"phone": phone(305)}])
    await app.state.dialer.tick()
    r = await client.get("/api/compliance/decisions", params={"campaignId": cid,
                                                              "reason": "state_hours"},
                         headers=team.headers)
    assert r.json()["count"] == 1
    r = await client.get("/api/compliance/decisions", params={"campaignId": cid},
                         headers=other_team.headers)
    assert r.json()["count"] == 0
    for params, field in (({"reason": "because"}, "reason"), ({"contactId": "x"}, "contactId"),
                          ({"evaluatedAfter": "yesterday"}, "evaluatedAfter"),
                          ({"evaluatedAfter": "2026-01-01T00:00:00"}, "evaluatedAfter"),
                          ({"outcome": "maybe"}, "outcome")):
        r = await client.get("/api/compliance/decisions", params=params, headers=team.headers)
        assert r.status_code == 400, r.text
        assert field in r.text
    now = app.state.clock.now()
    r = await client.get("/api/compliance/decisions", headers=team.headers, params={
        "contactId": contact, "evaluatedAfter": (now + timedelta(hours=1)).isoformat()})
    assert r.json()["count"] == 0


async def test_ai_telemarketing_needs_written_consent(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app, hour_utc=16)  # 11:00 in New York
    without, with_consent = phone(212), phone(212)
    cid, (c1, c2) = await campaign(client, database, team, [
        {"phone": without},
        {"phone": with_consent, "consent": {"kind": "prior_express_written",
                                            "source": "web form", "obtainedAt":
                                                "2026-01-05T10:00:00Z",
                                            "evidence": "form 7, ip 192.0.2.1"}},
    ], purpose="telemarketing")
    r = await client.get(f"/api/crm/contacts/{c2}", headers=team.headers)
    assert r.json()["contact"]["consent"]["kind"] == "prior_express_written"
    r = await client.post(f"/api/crm/campaigns/{cid}/run", json={"dryRun": True},
                          headers=team.headers)
    assert r.status_code == 200, r.text
    assert r.json()["purpose"] == "telemarketing" and r.json()["started"] == 1
    await app.state.dialer.tick()
    assert await calls_to(database, with_consent) == 1
    assert await calls_to(database, without) == 0
    async with database.db.session(write=False) as s:
        skipped = await s.scalar(select(Enrollment).where(Enrollment.contact_id == c1))
    assert skipped is not None and skipped.status == "skipped"
    assert skipped.reason == "consent_missing:US/ai-voice-consent"


async def test_turning_the_consent_check_off_needs_an_owner_and_is_logged(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app, hour_utc=16)
    async with database.db.session() as s:
        _, writer = await create_key(s, team.id, name="writer", scopes=["write"])
        await s.commit()
    cid, _ = await campaign(client, database, team, [{"phone": phone(212)}],
                            purpose="telemarketing", run=False)
    r = await client.patch(f"/api/crm/campaigns/{cid}", json={"consentCheck": False},
                           headers={"Authorization": f"Bearer {writer}"})
    assert r.status_code == 403 and "owner" in r.text
    r = await client.patch(f"/api/crm/campaigns/{cid}", json={"consentCheck": False},
                           headers=team.headers)
    assert r.status_code == 200 and r.json()["campaign"]["consent_check"] is False
    r = await client.get("/api/compliance/changes", headers=team.headers)
    change = r.json()["changes"][0]
    assert change["action"] == "consent_check_off" and change["detail"]["campaign_id"] == cid
    r = await client.patch(f"/api/crm/campaigns/{cid}", json={"purpose": "sales"},
                           headers=team.headers)
    assert r.status_code == 400 and "purpose" in r.text


async def test_default_purpose_comes_from_the_team_setting(
        client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    cid, _ = await campaign(client, database, team, [], run=False)
    r = await client.get(f"/api/crm/campaigns/{cid}", headers=team.headers)
    assert r.json()["campaign"]["purpose"] == "informational"
    r = await client.patch("/api/compliance/settings",
                           json={"defaultCampaignPurpose": "telemarketing"},
                           headers=team.headers)
    assert r.status_code == 200, r.text
    cid, _ = await campaign(client, database, team, [], run=False, compliant=True)
    r = await client.get(f"/api/crm/campaigns/{cid}", headers=team.headers)
    assert r.json()["campaign"]["purpose"] == "telemarketing"


async def test_settings_stricter_by_anyone_looser_by_an_owner_all_logged(
        client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    async with database.db.session() as s:
        _, writer = await create_key(s, team.id, name="writer", scopes=["write"])
        await s.commit()
    w = {"Authorization": f"Bearer {writer}"}
    rule = {"id": "team/no-evenings", "jurisdiction": "US", "kind": "window",
            "purposes": ["telemarketing", "informational"], "technologies": ["any"],
            "days": {"mon-sun": [["09:00", "18:00"]]}, "confidence": "verified",
            "effective_from": "2026-01-01",
            "sources": [{"cite": "house policy", "url": "https://example.org/policy"}]}
    r = await client.patch("/api/compliance/settings",
                           json={"rules": [{**rule, "effective_from": "soon"}]}, headers=w)
    assert r.status_code == 400 and "effective_from" in r.text
    r = await client.patch("/api/compliance/settings",
                           json={"marginSeconds": 300, "frequencyCapPer24h": 2,
                                 "rules": [rule]}, headers=w)
    assert r.status_code == 200, r.text
    assert r.json()["settings"]["margin_seconds"] == 300
    for looser in ({"marginSeconds": 60}, {"disabledRules": ["US-CA/adad-live-announcement"]},
                   {"timeRulesForAllPurposes": False}, {"frequencyCapPer24h": None},
                   {"attestations": ["natural_voice_announcement"]}, {"rules": []}):
        r = await client.patch("/api/compliance/settings", json=looser, headers=w)
        assert r.status_code == 403, (looser, r.text)
        r = await client.patch("/api/compliance/settings", json=looser, headers=team.headers)
        assert r.status_code == 200, (looser, r.text)
    for bad, field in (({"marginSeconds": -1}, "marginSeconds"),
                       ({"disabledRules": ["US-XX/nope"]}, "disabledRules"),
                       ({"jurisdictionMode": "lenient"}, "jurisdictionMode"),
                       ({"retentionDays": 1}, "retentionDays"),
                       ({"blackouts": [{"jurisdiction": "US-LA"}]}, "blackouts"),
                       ({"attestations": ["prior_express_written_consent"]}, "attestations")):
        r = await client.patch("/api/compliance/settings", json=bad, headers=team.headers)
        assert r.status_code == 400 and field in r.text, (bad, r.text)
    r = await client.get("/api/compliance/changes", params={"limit": 100}, headers=team.headers)
    actions = [c["action"] for c in r.json()["changes"]]
    assert "set_disabled_rules" in actions and "set_margin_seconds" in actions
    assert all(c["actor"] for c in r.json()["changes"])


async def test_a_florida_cap_holds_across_the_teams_campaigns(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    start = fresh_monday(app, hour_utc=15)  # 10:00 in Miami
    number = phone(305)
    consent = {"kind": "prior_express_written", "source": "form"}
    company = await make_company(client, team)
    campaigns = []
    for i in range(5):
        cid, _ = await campaign(client, database, team, [{
            "phone": number, "firstName": f"P{i}", "consent": consent}],
            company=company, purpose="telemarketing")
        campaigns.append(cid)
    for _ in range(12):  # an hour of passes, calls end in seconds
        await app.state.dialer.tick()
        app.state.clock.advance(seconds=300)
    assert await calls_to(database, number) == 3
    async with database.db.session(write=False) as s:
        waiting = list(await s.scalars(select(Enrollment).where(
            Enrollment.campaign_id.in_(campaigns), Enrollment.status == "pending")))
        first = await s.scalar(select(func.min(Call.started_at)).where(Call.to_number == number))
    assert waiting and all(e.reason == "frequency_cap:US-FL/cap" for e in waiting)
    assert first is not None and all(e.next_attempt_at == first + timedelta(hours=24)
                                     for e in waiting)
    assert start <= first


async def test_purge_removes_decisions_past_the_retention(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app, hour_utc=1)
    cid, _ = await campaign(client, database, team, [{"phone": phone(305)}])
    await app.state.dialer.tick()
    r = await client.patch("/api/compliance/settings", json={"retentionDays": 30},
                           headers=team.headers)
    assert r.status_code == 200
    now = app.state.clock.now()
    assert await app.state.dialer.purge_decisions(now + timedelta(days=29)) == 0
    assert await app.state.dialer.purge_decisions(now + timedelta(days=31)) >= 1
    async with database.db.session(write=False) as s:
        left = await s.scalar(select(func.count()).select_from(DialDecision)
                              .where(DialDecision.campaign_id == cid))
    assert left == 0


async def test_four_workers_on_postgresql_cannot_exceed_a_cap(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    """Four dialers, each with its own connection pool, claim at the same moment for one
    Florida number enrolled in twelve telemarketing campaigns: three calls, never four."""
    if database.backend != "postgres":
        pytest.skip("the per-number lock is PostgreSQL's; SQLite has one writer")
    fresh_monday(app, hour_utc=15)
    number = phone(305)
    company = await make_company(client, team)
    for i in range(12):
        await campaign(client, database, team, [{
            "phone": number, "firstName": f"W{i}",
            "consent": {"kind": "prior_express_written", "source": "form"}}],
            company=company, purpose="telemarketing")
    dbs = [open_database(database.url, pool_size=2) for _ in range(4)]
    try:
        workers = [Dialer(db, app.state.clock, app.state.carrier,
                          make_settings(database.url), worker_id=f"w{i}")
                   for i, db in enumerate(dbs)]
        for _ in range(5):
            await asyncio.gather(*(w.claim(app.state.clock.now()) for w in workers))
        assert await calls_to(database, number) == 3
    finally:
        for db in dbs:
            await db.dispose()



async def test_a_single_call_goes_through_the_compliance_engine(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app, hour_utc=1)  # 20:00 or 21:00 in Miami
    assistant, _ = await assistant_with_numbers(database, team)
    number = phone(305)
    r = await client.post("/api/crm/calls", json={"assistantId": assistant, "toNumber": number},
                          headers=team.headers)
    assert r.status_code == 409, r.text
    details = r.json()["details"]
    assert details["reason"] in ("state_hours", "federal_hours")
    assert "US-FL/hours" in details["rulesFired"] and details["nextAllowedAt"]
    app.state.clock.advance(seconds=14 * 3600)  # 09:00 or 10:00 in Miami
    r = await client.post("/api/crm/calls", json={"assistantId": assistant, "toNumber": number},
                          headers=team.headers)
    assert r.status_code == 201, r.text
    call_id = r.json()["call"]["id"]
    r = await client.get("/api/compliance/decisions", params={"outcome": "allow"},
                         headers=team.headers)
    assert call_id in [d["call_id"] for d in r.json()["decisions"]]
