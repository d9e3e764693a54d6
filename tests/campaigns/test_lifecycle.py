"""Campaign lifecycle through the API: schedule, pause/resume, edit while paused, cancel,
soft delete, list filters, windows, and single calls."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.campaigns.helpers import assistant_with_numbers, fresh_monday, setup_campaign, us_phone
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact


async def _get(client: httpx.AsyncClient, t: TeamCtx, cid: str) -> dict[str, Any]:
    r = await client.get(f"/api/crm/campaigns/{cid}", headers=t.headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["campaign"])


async def test_scheduled_start(app: Any, client: httpx.AsyncClient, database: DbHandle,
                               team: TeamCtx) -> None:
    now = fresh_monday(app)
    start = (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    cid, _ = await setup_campaign(client, database, team,
                                  [{"firstName": "S", "lastName": "X", "phone": us_phone(7001)}],
                                  scheduledStartAt=start)
    c = await _get(client, team, cid)
    assert c["status"] == "scheduled" and c["scheduled_start_at"] == start[:-1] + ".000Z"
    await app.state.dialer.tick()
    assert (await _get(client, team, cid))["status"] == "scheduled"
    app.state.clock.advance(minutes=61)
    await app.state.dialer.tick()
    c = await _get(client, team, cid)
    assert c["status"] in ("running", "completed") and c["contacts_called"] == 1


async def test_pause_edit_resume_cancel_delete(app: Any, client: httpx.AsyncClient,
                                               database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app)
    contacts = [{"firstName": f"L{i}", "lastName": "X", "phone": us_phone(7100 + i)}
                for i in range(6)]
    for i in range(6):
        await app.state.carrier.set_profile(us_phone(7100 + i), ["answer"])
    cid, _ = await setup_campaign(client, database, team, contacts, maxConcurrentCalls=2)
    h = team.headers
    r = await client.post(f"/api/crm/campaigns/{cid}/pause", headers=h)
    assert r.status_code == 409  # a draft cannot be paused
    await client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=h)
    r = await client.patch(f"/api/crm/campaigns/{cid}", json={"maxConcurrentCalls": 4},
                           headers=h)
    assert r.status_code == 409 and "Pause" in r.json()["error"]
    r = await client.post(f"/api/crm/campaigns/{cid}/pause", headers=h)
    assert r.status_code == 200 and r.json()["campaign"]["status"] == "paused"
    r = await client.patch(f"/api/crm/campaigns/{cid}",
                           json={"maxConcurrentCalls": 4, "callWindowDays": ["mon", "tue"]},
                           headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["campaign"]["max_concurrent_calls"] == 4
    assert r.json()["campaign"]["call_window_days"] == ["mon", "tue"]
    for _ in range(3):
        app.state.clock.advance(minutes=5)
        await app.state.dialer.tick()
    paused = await _get(client, team, cid)
    # the calls in progress finished; none started while paused
    assert paused["contacts_called"] == 2 and paused["active_calls"] == 0
    r = await client.patch(f"/api/crm/campaigns/{cid}", json={"status": "running"}, headers=h)
    assert r.json()["campaign"]["status"] == "running"
    await app.state.dialer.tick()
    assert (await _get(client, team, cid))["contacts_called"] == 6
    r = await client.delete(f"/api/crm/campaigns/{cid}", headers=h)
    assert r.status_code == 409
    r = await client.post(f"/api/crm/campaigns/{cid}/cancel", headers=h)
    assert r.json()["campaign"]["status"] == "cancelled"
    r = await client.post(f"/api/crm/campaigns/{cid}/resume", headers=h)
    assert r.status_code == 409
    app.state.clock.advance(minutes=30)
    await app.state.dialer.tick()
    c = await _get(client, team, cid)
    assert c["status"] == "cancelled" and c["active_calls"] == 0
    r = await client.get(f"/api/crm/campaigns/{cid}/contacts", params={"limit": 100},
                         headers=h)
    assert {e["status"] for e in r.json()["contacts"]} <= {"completed", "cancelled"}
    assert (await client.delete(f"/api/crm/campaigns/{cid}", headers=h)).status_code == 200
    listed = await client.get("/api/crm/campaigns", params={"teamId": team.id}, headers=h)
    assert cid not in [x["id"] for x in listed.json()["campaigns"]]
    only = await client.get("/api/crm/campaigns", params={"teamId": team.id,
                                                          "deleted": "only"}, headers=h)
    assert [x["id"] for x in only.json()["campaigns"]] == [cid]
    assert only.json()["campaigns"][0]["deleted_at"] is not None
    bad = await client.get("/api/crm/campaigns", params={"teamId": team.id,
                                                         "status": "flying"}, headers=h)
    assert bad.status_code == 400


async def test_outside_window_waits_for_it(app: Any, client: httpx.AsyncClient,
                                           database: DbHandle, team: TeamCtx) -> None:
    start = fresh_monday(app, hour_utc=3)  # 22:00 or 23:00 in New York: outside legal hours
    ny = ZoneInfo("America/New_York")
    opens = datetime.combine(start.astimezone(ny).date(), time(9, 0), ny)
    if opens <= start:
        opens += timedelta(days=1)
    cid, _ = await setup_campaign(
        client, database, team,
        [{"firstName": "W", "lastName": "X", "phone": us_phone(7200),
          "timezone": "America/New_York"}],
        callWindowStart="09:00", callWindowEnd="17:00")
    r = await client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
    body = r.json()
    assert body["started"] == 0
    expected = opens.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert "next opens at" in body["message"] and expected in body["message"], body
    app.state.clock.at = opens - timedelta(minutes=30)  # legal, but before the window
    await app.state.dialer.tick()
    assert (await _get(client, team, cid))["contacts_called"] == 0
    app.state.clock.at = opens
    await app.state.dialer.tick()
    assert (await _get(client, team, cid))["contacts_called"] == 1


async def test_create_validation(client: httpx.AsyncClient, database: DbHandle,
                                 team: TeamCtx, other_team: TeamCtx) -> None:
    company = await make_company(client, team)
    assistant, numbers = await assistant_with_numbers(database, team)
    _, foreign = await assistant_with_numbers(database, other_team)
    base = {"teamId": team.id, "assistantId": assistant, "companyId": company,
            "fromNumberIds": numbers, "name": "V"}
    cases = [({"callWindowStart": "25:00"}, 400), ({"callWindowTimezone": "Mars/Base"}, 400),
             ({"maxConcurrentCalls": 0}, 400), ({"fromNumberIds": []}, 400),
             ({"fromNumberIds": foreign}, 403), ({"teamId": other_team.id}, 403),
             ({"assistantId": "asst_01m81x4gbvdj8dkmnwwwqav0yh"}, 404),
             ({"callWindowDays": ["funday"]}, 400), ({"retryBackoff": "random"}, 400),
             ({"audience": "everyone"}, 400)]
    for patch, code in cases:
        r = await client.post("/api/crm/campaigns", json={**base, **patch}, headers=team.headers)
        assert r.status_code == code, (patch, r.text)
        assert r.json()["success"] is False
    r = await client.post("/api/crm/campaigns", json=base, headers=team.headers)
    assert r.status_code == 201
    c = r.json()["campaign"]
    assert c["status"] == "draft" and c["max_concurrent_calls"] == 3
    assert c["max_attempts_per_contact"] == 3 and c["retry_delay_minutes"] == 60
    r = await client.post(f"/api/crm/campaigns/{c['id']}/contacts",
                          json={"contactIds": ["cont_01m81x4gbvdj8dkmnwwwqav0yh"]},
                          headers=team.headers)
    assert r.status_code == 404 and "cont_01m81x4gbvdj8dkmnwwwqav0yh" in r.json()["error"]


async def test_single_call(app: Any, client: httpx.AsyncClient, database: DbHandle,
                           team: TeamCtx) -> None:
    fresh_monday(app)
    assistant, _ = await assistant_with_numbers(database, team)
    await app.state.carrier.set_profile(us_phone(7300), ["answer"], persona="interested")
    r = await client.post("/api/crm/calls", json={"assistantId": assistant,
                                                  "toNumber": us_phone(7300)},
                          headers=team.headers)
    assert r.status_code == 201, r.text
    call_id = r.json()["call"]["id"]
    for _ in range(40):
        app.state.clock.advance(seconds=10)
        await app.state.dialer.tick()
    r = await client.get(f"/api/calls/{call_id}", headers=team.headers)
    call = r.json()["call"]
    assert call["status"] == "ended" and call["outcome"] == "answered", call
    assert call["campaign_id"] is None and len(call["messages"]) >= 3
    company = await make_company(client, team)
    dnc = await make_contact(client, team, company, phone=us_phone(7301), doNotCall=True)
    r = await client.post("/api/crm/calls", json={"assistantId": assistant,
                                                  "toNumber": us_phone(7301),
                                                  "contactId": dnc["id"]},
                          headers=team.headers)
    assert r.status_code == 409 and "do-not-call" in r.json()["error"]
    fresh_monday(app, hour_utc=4)  # 23:00 in New York
    r = await client.post("/api/crm/calls", json={"assistantId": assistant,
                                                  "toNumber": us_phone(7302)},
                          headers=team.headers)
    assert r.status_code == 409 and "legal calling hours" in r.json()["error"]
