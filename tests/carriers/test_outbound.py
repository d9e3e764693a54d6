"""Outbound calls through Twilio and Telnyx (their fakes): numbers bought through the
carrier, a campaign dialed end to end with the carrier's own callbacks, what each dial
carries, and the carrier's errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.carriers.conftest import (
    PROVIDERS,
    Carriers,
    assistant,
    buy_number,
    calls_of,
    campaign,
    new_phone,
)
from tests.conftest import DbHandle, TeamCtx

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)


async def campaign_status(c: Carriers, t: TeamCtx, cid: str) -> dict[str, Any]:
    r = await c.client.get(f"/api/crm/campaigns/{cid}", headers=t.headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["campaign"])


async def test_a_campaign_through_the_carrier(carriers: Carriers, database: DbHandle,
                                              team: TeamCtx, provider: str) -> None:
    c = carriers
    mix = ["answer"] * 12 + ["busy"] * 3 + ["no_answer"] * 3 + ["voicemail"] * 2 + ["invalid"]
    phones = [new_phone() for _ in mix]
    for phone, behaviour in zip(phones, mix, strict=True):
        c.net.behave(phone, behaviour)
    cid, _ = await campaign(c, database, team, provider, phones)
    r = await c.client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
    assert r.status_code == 200, r.text
    for _ in range(30):
        await c.tick()
        if (await campaign_status(c, team, cid))["status"] == "completed":
            break
    assert (await campaign_status(c, team, cid))["status"] == "completed"
    calls = await calls_of(database, cid)
    assert len(calls) == len(phones)  # one dial per contact, none twice
    expected = {"answer": "answered", "busy": "busy", "no_answer": "no_answer",
                "voicemail": "voicemail", "invalid": "invalid_number"}
    for phone, behaviour in zip(phones, mix, strict=True):
        call = calls[phone]
        assert (call.status, call.outcome) == ("ended", expected[behaviour]), (
            behaviour, call.outcome, call.ended_reason)
        assert call.carrier == provider
        if behaviour != "invalid":
            fake = c.net.calls[call.carrier_call_id]  # the carrier's own id was recorded
            assert fake.to == phone
        if behaviour == "answer":
            assert call.answered_at is not None and call.direction == "outbound"
            assert not call.messages  # no simulated conversation on a real line
            assert call.call_metadata["conversation"] == "voice"
    # The carrier's AMD said machine: callfleet hung up (voicemail action "hangup").
    machines = [calls[p] for p, b in zip(phones, mix, strict=True) if b == "voicemail"]
    assert all(c.net.calls[m.carrier_call_id].hung_up_by_api for m in machines)
    invalid = calls[phones[-1]]
    assert "invalid" in (invalid.ended_reason or "")


async def test_every_dial_carries_the_call_id_and_limits(carriers: Carriers,
                                                        database: DbHandle, team: TeamCtx,
                                                        provider: str) -> None:
    c = carriers
    phone = new_phone()
    cid, _ = await campaign(c, database, team, provider, [phone],
                            assistant={"voicemail_action": "leave_message"})
    await c.client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
    call = (await calls_of(database, cid))[phone]
    fake = c.net.calls[call.carrier_call_id]
    p = fake.params
    if provider == "twilio":
        assert f"?call={call.id}" in p["StatusCallback"]
        assert p["StatusCallback"].startswith("https://callfleet.test/carriers/twilio/status")
        assert f'<Parameter name="call_id" value="{call.id}"' in p["Twiml"]
        assert "<Connect><Stream" in p["Twiml"] and f"/voice/twilio/{call.id}/" in p["Twiml"]
        assert int(p["Timeout"]) >= 15 and int(p["TimeLimit"]) == 600
        assert p["MachineDetection"] == "DetectMessageEnd" and p["AsyncAmd"] == "true"
        assert set(p["StatusCallbackEvent"]) == {"initiated", "ringing", "answered",
                                                 "completed"}
    else:
        assert base64.b64decode(p["client_state"]).decode() == call.id
        assert p["command_id"] == call.id and p["connection_id"] == "1234567890"
        assert p["webhook_url"] == "https://callfleet.test/carriers/telnyx/webhook"
        assert p["timeout_secs"] >= 15 and p["time_limit_secs"] == 600
        assert p["answering_machine_detection"] == "premium"
        assert p["stream_url"].startswith(f"wss://callfleet.test/voice/telnyx/{call.id}/")
        assert p["stream_bidirectional_mode"] == "rtp"


async def test_credentials_rejected_pause_the_campaign(carriers: Carriers,
                                                      database: DbHandle, team: TeamCtx,
                                                      provider: str) -> None:
    c = carriers
    phones = [new_phone() for _ in range(3)]
    cid, _ = await campaign(c, database, team, provider, phones)
    account = "AC" + "f" * 32 if provider == "twilio" else "KEYfake0123456789"
    c.net.broke.add(account)
    try:
        r = await c.client.post(f"/api/crm/campaigns/{cid}/run", json={"maxCalls": 1},
                                headers=team.headers)
        assert r.status_code == 200, r.text
        await c.tick()
    finally:
        c.net.broke.discard(account)
    body = await campaign_status(c, team, cid)
    assert body["status"] == "paused"
    reason = body.get("status_reason") or ""
    assert ("not active" in reason) if provider == "twilio" else ("insufficient funds" in reason)
    calls = await calls_of(database, cid)
    assert len(calls) == 1  # paused after the first refusal, not burning every contact
    (call,) = calls.values()
    assert call.outcome == "failed" and "carrier_rejected" in (call.ended_reason or "")


async def test_one_call_placed_through_the_api(carriers: Carriers, database: DbHandle,
                                               team: TeamCtx, provider: str) -> None:
    c = carriers
    asst = await assistant(database, team)
    pn = await buy_number(c, team, provider, asst)
    phone = new_phone()
    r = await c.client.post("/api/crm/calls", headers=team.headers, json={
        "assistantId": asst, "toNumber": phone})
    assert r.status_code == 201, r.text
    call = r.json()["call"]
    assert call["carrier"] == provider and call["from_number"] == pn["phone_number"]
    dialed = [f for f in c.net.calls.values() if f.to == phone]
    assert len(dialed) == 1
    await c.net.deliver(dialed[0].sid)
    r = await c.client.get(f"/api/calls/{call['id']}", headers=team.headers)
    body = r.json()["call"]
    assert (body["status"], body["outcome"], body["carrier_call_id"]) == (
        "ended", "answered", dialed[0].sid)
