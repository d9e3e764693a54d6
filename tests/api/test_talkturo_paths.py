"""Talkturo's paths: outbound assistants, call logs under /api/crm/calls, and a call's signed
recording link."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from callfleet.calls.models import Call
from callfleet.calls.service import recording_link_valid
from callfleet.numbers.models import PhoneNumber
from callfleet.secrets import secret_box
from tests.campaigns.helpers import assistant_with_numbers, fresh_monday, us_phone
from tests.conftest import DbHandle, TeamCtx


async def test_outbound_assistants_have_an_active_number(
        client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        other_team: TeamCtx) -> None:
    h = team.headers
    ready, numbers = await assistant_with_numbers(database, team, 2)
    no_number, _ = await assistant_with_numbers(database, team, 0)
    suspended, (only,) = await assistant_with_numbers(database, team, 1)
    inbound, _ = await assistant_with_numbers(database, team, 1)
    async with database.db.session() as s:
        number = await s.get(PhoneNumber, only)
        assert number is not None
        number.status = "suspended"
        await s.commit()
    r = await client.patch(f"/api/assistants/{inbound}", headers=h,
                           json={"outboundEnabled": False})
    assert r.status_code == 200, r.text
    r = await client.get("/api/crm/outbound-assistants", headers=h,
                         params={"teamId": team.id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["id"] for a in body["assistants"]] == [ready] and body["count"] == 1
    listed = body["assistants"][0]
    assert listed["outbound_enabled"] is True
    assert [n["id"] for n in listed["phone_numbers"]] == sorted(numbers)
    assert {n["status"] for n in listed["phone_numbers"]} == {"active"}
    assert no_number and suspended  # present in the team, absent from the list
    r = await client.get("/api/crm/outbound-assistants", headers=other_team.headers)
    assert r.json() == {"success": True, "assistants": [], "count": 0}
    r = await client.get("/api/crm/outbound-assistants", headers=h,
                         params={"teamId": other_team.id})
    assert r.status_code == 403


async def _one_call(app: Any, client: httpx.AsyncClient, database: DbHandle,
                    t: TeamCtx) -> str:
    fresh_monday(app)
    assistant, _ = await assistant_with_numbers(database, t)
    r = await client.post("/api/crm/calls", headers=t.headers,
                          json={"assistantId": assistant, "toNumber": us_phone(9400)})
    assert r.status_code == 201, r.text
    return str(r.json()["call"]["id"])


async def test_crm_calls_lists_call_logs_like_api_calls(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        other_team: TeamCtx) -> None:
    call_id = await _one_call(app, client, database, team)
    params = {"direction": "outbound", "to": us_phone(9400)}
    a = await client.get("/api/crm/calls", headers=team.headers, params=params)
    b = await client.get("/api/calls", headers=team.headers, params=params)
    assert a.status_code == 200 and a.json() == b.json()
    assert [c["id"] for c in a.json()["calls"]] == [call_id] and a.json()["count"] == 1
    bad = await client.get("/api/crm/calls", headers=team.headers,
                           params={"status": "flying"})
    assert bad.status_code == 400
    other = await client.get("/api/crm/calls", headers=other_team.headers, params=params)
    assert other.json()["calls"] == []


async def test_recording_url_is_signed_and_expires(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx,
        other_team: TeamCtx) -> None:
    call_id = await _one_call(app, client, database, team)
    path = f"/api/calls/{call_id}/recording-url"
    r = await client.get(path, headers=team.headers)
    assert r.status_code == 404 and r.json()["error"] == "Recording not found"
    async with database.db.session() as s:
        call = await s.get(Call, call_id)
        assert call is not None
        call.recording_url = f"/api/calls/{call_id}/recording"
        await s.commit()
    assert (await client.get(path, headers=other_team.headers)).status_code == 403
    r = await client.get(path, headers=team.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["expiresIn"] == 3600
    link = urlparse(body["url"])
    assert link.path == f"/api/calls/{call_id}/recording"
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    box, now = secret_box(), time.time()
    assert recording_link_valid(call_id, query["expires"], query["signature"], now, box)
    assert int(query["expires"]) - now <= 3600
    # Another call, a changed expiry, a forged signature, or an expired link: refused.
    assert not recording_link_valid(call_id[:-1] + "0", query["expires"],
                                    query["signature"], now, box)
    assert not recording_link_valid(call_id, str(int(query["expires"]) + 60),
                                    query["signature"], now, box)
    assert not recording_link_valid(call_id, query["expires"], "0" * 64, now, box)
    assert not recording_link_valid(call_id, query["expires"], query["signature"],
                                    now + 3601, box)
