"""Do-not-call depth: National Do Not Call Registry downloads as dated suppression lists, the
31-day warning, and removed team DNC entries kept on record."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from callfleet.campaigns.models import Enrollment
from callfleet.compliance.service import registry_numbers
from tests.campaigns.helpers import fresh_monday
from tests.compliance.test_dialing import calls_to, campaign, phone
from tests.conftest import DbHandle, TeamCtx


def test_registry_lines() -> None:
    numbers, errors = registry_numbers([
        "AreaCode,PhoneNumber", "201,2345678", "2015550123", "(305) 555-0199", "",
        "305 555 0188", "12,345", "201,1234567"])
    assert numbers == {"+12012345678", "+12015550123", "+13055550199", "+13055550188"}
    assert [e["row"] for e in errors] == [7, 8]


async def test_national_registry_list_skips_telemarketing_calls_only(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        other_team: TeamCtx) -> None:
    now = fresh_monday(app, hour_utc=16)
    listed, free = phone(212), phone(212)
    body = f"AreaCode,PhoneNumber\n{listed[2:5]},{listed[5:]}\n201,23\n"
    day = (now - timedelta(days=3)).date().isoformat()
    r = await client.post("/api/dnc/national", params={"registryDate": day}, content=body,
                          headers={**team.headers, "Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["list"]["numbers"] == 1 and not out["list"]["stale"] and out["failed"] == 1
    consent = {"kind": "prior_express_written", "source": "form"}
    _tm, (c_listed, _) = await campaign(client, database, team, [
        {"phone": listed, "consent": consent}, {"phone": free, "consent": consent}],
        purpose="telemarketing")
    _info, _ = await campaign(client, database, other_team, [{"phone": listed}])
    await app.state.dialer.tick()
    assert await calls_to(database, free) == 1
    assert await calls_to(database, listed) == 1  # only the other team's informational call
    async with database.db.session(write=False) as s:
        e = await s.scalar(select(Enrollment).where(Enrollment.contact_id == c_listed))
    assert e is not None and (e.status, e.reason) == ("skipped", "dnc_national_listed")
    r = await client.get("/api/compliance/decisions",
                         params={"reason": "dnc_national_listed"}, headers=team.headers)
    assert r.json()["count"] == 1
    r = await client.get("/api/dnc/national", headers=other_team.headers)
    assert r.json()["count"] == 0


async def test_an_old_registry_download_comes_with_a_warning(
        app: Any, client: httpx.AsyncClient, team: TeamCtx) -> None:
    now = app.state.clock.now()
    old = (now - timedelta(days=40)).date().isoformat()
    r = await client.post("/api/dnc/national", params={"registryDate": old},
                          content="201,2345678\n",
                          headers={**team.headers, "Content-Type": "text/plain"})
    assert r.status_code == 201
    assert r.json()["list"]["stale"] and "31 days" in r.json()["list"]["warning"]
    r = await client.get("/api/dnc/national", headers=team.headers)
    assert any(x["stale"] for x in r.json()["lists"])
    for params in ({"registryDate": "yesterday"}, {},
                   {"registryDate": (now + timedelta(days=5)).date().isoformat()}):
        r = await client.post("/api/dnc/national", params=params, content="201,2345678\n",
                              headers={**team.headers, "Content-Type": "text/plain"})
        assert r.status_code == 400 and "registryDate" in r.text
    r = await client.post("/api/dnc/national", params={"registryDate": old},
                          content="nothing here\n",
                          headers={**team.headers, "Content-Type": "text/plain"})
    assert r.status_code == 400


async def test_a_removed_dnc_entry_is_kept_and_listing_again_revives_it(
        client: httpx.AsyncClient, team: TeamCtx) -> None:
    number = phone(415)
    r = await client.post("/api/dnc", json={"phoneNumber": number, "reason": "asked"},
                          headers=team.headers)
    entry = r.json()["entry"]
    r = await client.delete(f"/api/dnc/{entry['id']}", headers=team.headers)
    assert r.status_code == 200
    r = await client.get("/api/dnc", params={"search": number[2:]}, headers=team.headers)
    assert r.json()["count"] == 0
    r = await client.get("/api/dnc", params={"search": number[2:], "includeRemoved": "true"},
                         headers=team.headers)
    (kept,) = r.json()["entries"]
    assert kept["id"] == entry["id"] and kept["removed_at"] is not None
    r = await client.post("/api/dnc", json={"phoneNumber": number}, headers=team.headers)
    assert r.status_code == 201 and r.json()["entry"]["id"] == entry["id"]
    assert r.json()["entry"]["removed_at"] is None
