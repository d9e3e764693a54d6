"""Team dialing settings: calls-per-second pacing, team-wide concurrency, legal hours."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from callfleet.calls.models import Call
from tests.campaigns.helpers import fresh_monday, setup_campaign, us_phone
from tests.conftest import DbHandle, TeamCtx


async def _calls(database: DbHandle, cid: str) -> int:
    async with database.db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(Call)
                                  .where(Call.campaign_id == cid)) or 0)


async def test_calls_per_second_paces_the_dialer(app: Any, client: httpx.AsyncClient,
                                                 database: DbHandle, team: TeamCtx) -> None:
    r = await client.patch("/api/team", json={"settings": {"callsPerSecond": 2}},
                           headers=team.headers)
    assert r.status_code == 200, r.text
    assert r.json()["team"]["settings"]["calls_per_second"] == 2
    fresh_monday(app)
    contacts = [{"firstName": f"P{i}", "lastName": "X", "phone": us_phone(3000 + i)}
                for i in range(12)]
    for i in range(12):
        await app.state.carrier.set_profile(us_phone(3000 + i), ["answer"])
    cid, _ = await setup_campaign(client, database, team, contacts, maxConcurrentCalls=50)
    r = await client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
    assert r.json()["started"] == 2, r.json()
    await app.state.dialer.tick()
    assert await _calls(database, cid) == 2  # no time passed: no new tokens
    app.state.clock.advance(seconds=1)
    await app.state.dialer.tick()
    assert await _calls(database, cid) == 4
    app.state.clock.advance(seconds=0.5)
    await app.state.dialer.tick()
    assert await _calls(database, cid) == 5


async def test_team_wide_concurrency_cap(app: Any, client: httpx.AsyncClient,
                                         database: DbHandle, team: TeamCtx) -> None:
    r = await client.patch("/api/team", json={"settings": {"maxConcurrentCalls": 3}},
                           headers=team.headers)
    assert r.status_code == 200
    fresh_monday(app)
    for i in range(5):  # calls that stay up while the clock stands still
        await app.state.carrier.set_profile(us_phone(4100 + i), ["answer"])
        await app.state.carrier.set_profile(us_phone(4200 + i), ["answer"])
    a, _ = await setup_campaign(client, database, team, [
        {"firstName": f"A{i}", "lastName": "X", "phone": us_phone(4100 + i)} for i in range(5)],
        maxConcurrentCalls=10)
    b, _ = await setup_campaign(client, database, team, [
        {"firstName": f"B{i}", "lastName": "X", "phone": us_phone(4200 + i)} for i in range(5)],
        maxConcurrentCalls=10)
    for cid in (a, b):
        await client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
    await app.state.dialer.tick()
    r = await client.get("/api/team", headers=team.headers)
    assert r.json()["team"]["active_calls"] <= 3
    assert await _calls(database, a) + await _calls(database, b) == 3


async def test_legal_hours_can_narrow_but_never_widen(client: httpx.AsyncClient,
                                                      team: TeamCtx) -> None:
    ok = await client.patch("/api/team", headers=team.headers, json={
        "settings": {"legalHoursStart": "09:00", "legalHoursEnd": "20:00"}})
    assert ok.status_code == 200
    assert ok.json()["team"]["settings"]["legal_hours_start"] == "09:00"
    for bad in ({"legalHoursStart": "07:00"}, {"legalHoursEnd": "22:30"},
                {"legalHoursStart": "nine"}, {"legalHoursStart": "20:00",
                                               "legalHoursEnd": "10:00"}):
        r = await client.patch("/api/team", json={"settings": bad}, headers=team.headers)
        assert r.status_code == 400, bad
        assert r.json()["success"] is False
    back = await client.patch("/api/team", headers=team.headers, json={
        "settings": {"legalHoursStart": None, "legalHoursEnd": None}})
    assert back.json()["team"]["settings"]["legal_hours_start"] is None
