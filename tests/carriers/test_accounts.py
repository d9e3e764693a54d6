"""A team's own carrier account (``PUT /api/team/carriers/{provider}``): checked with the
carrier, encrypted at rest, masked on read, and used for that team's numbers, calls and
callback signatures instead of the deployment's account."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from callfleet.carriers.models import CarrierAccount
from tests.carriers.conftest import Carriers, calls_of, campaign, new_phone
from tests.conftest import DbHandle, TeamCtx

OWN_SID = "AC" + "1" * 32
OWN_TOKEN = "own-twilio-token-abcdefghijkl"
OWN_KEY = "KEYown9876543210"


def public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


async def test_bad_input_names_the_field(carriers: Carriers, team: TeamCtx) -> None:
    c = carriers
    cases = [
        ("twilio", {"authToken": "x" * 20}, "accountSid"),
        ("twilio", {"accountSid": "AC123", "authToken": "x" * 20}, "accountSid"),
        ("twilio", {"accountSid": OWN_SID}, "authToken"),
        ("twilio", {"accountSid": OWN_SID, "authToken": "wrong-token"}, "authToken"),  # refused
        ("twilio", {"accountSid": OWN_SID, "authToken": "x", "callsPerSecond": 0},
         "callsPerSecond"),
        ("telnyx", {"apiKey": "k", "publicKey": "not base64!", "connectionId": "1"},
         "publicKey"),
        ("telnyx", {"apiKey": "k", "publicKey": public_key(), "connectionId": "a b"},
         "connectionId"),
        ("telnyx", {"apiKey": "wrong", "publicKey": public_key(), "connectionId": "7"},
         "apiKey"),  # refused by the carrier
        ("vonage", {}, "provider"),
    ]
    c.net.twilio_accounts[OWN_SID] = OWN_TOKEN
    for provider, body, name in cases:
        r = await c.client.put(f"/api/team/carriers/{provider}", json=body,
                               headers=team.headers)
        assert r.status_code == 400, (provider, body, r.text)
        assert name in r.json()["details"], (provider, body, r.json())


async def test_a_teams_own_twilio_account(carriers: Carriers, database: DbHandle,
                                          team: TeamCtx, other_team: TeamCtx) -> None:
    c = carriers
    c.net.twilio_accounts[OWN_SID] = OWN_TOKEN
    r = await c.client.put("/api/team/carriers/twilio", headers=team.headers, json={
        "accountSid": OWN_SID, "authToken": OWN_TOKEN, "callsPerSecond": 3})
    assert r.status_code == 200, r.text
    shown = r.json()["carrier"]
    assert shown["account_sid"] == OWN_SID and shown["source"] == "team"
    assert OWN_TOKEN not in r.text and shown["auth_token"].endswith(OWN_TOKEN[-4:])
    assert shown["calls_per_second"] == 3
    async with database.db.session(write=False) as s:
        row = await s.scalar(select(CarrierAccount).where(
            CarrierAccount.provider == "twilio",
            CarrierAccount.team_id == team.id))  # tenancy: system (a test reads the row)
    assert row is not None and OWN_TOKEN not in row.credentials  # encrypted at rest
    r = await c.client.get("/api/team/carriers", headers=team.headers)
    sources = {x["provider"]: x["source"] for x in r.json()["carriers"]}
    assert sources == {"twilio": "team", "telnyx": "deployment"}
    r = await c.client.get("/api/team/carriers/twilio", headers=other_team.headers)
    assert r.status_code == 404  # another team sees nothing of it

    # The team's numbers, calls and callbacks use its own account.
    phone = new_phone()
    before = len(c.net.requests)
    cid, _ = await campaign(c, database, team, "twilio", [phone])
    assert any(OWN_SID in path for _, path in c.net.requests[before:])
    await c.client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
    call = (await calls_of(database, cid))[phone]
    fake = c.net.calls[call.carrier_call_id]
    assert fake.params["_account"] == OWN_SID
    await c.net.deliver(fake.sid)  # signed with the team's own token: accepted
    assert all(sent["status"] == 204 for sent in fake.sent)
    assert (await calls_of(database, cid))[phone].status == "ended"

    r = await c.client.delete("/api/team/carriers/twilio", headers=team.headers)
    assert r.status_code == 200, r.text
    r = await c.client.get("/api/team/carriers/twilio", headers=team.headers)
    assert r.status_code == 404


async def test_a_teams_own_telnyx_account(carriers: Carriers, team: TeamCtx) -> None:
    c = carriers
    c.net.telnyx_keys[OWN_KEY] = "4444"
    key = public_key()
    r = await c.client.put("/api/team/carriers/telnyx", headers=team.headers, json={
        "apiKey": OWN_KEY, "publicKey": key, "connectionId": "4444"})
    assert r.status_code == 200, r.text
    shown = r.json()["carrier"]
    assert shown["connection_id"] == "4444" and shown["public_key"] == key
    assert OWN_KEY not in r.text


@pytest.mark.parametrize("provider", ["twilio", "telnyx"])
async def test_import_and_release_a_number_the_account_owns(
        carriers: Carriers, team: TeamCtx, provider: str) -> None:
    c = carriers
    owned = new_phone(area=718)
    fake = c.net.own(provider, owned)
    r = await c.client.post("/api/phone-numbers", headers=team.headers, json={
        "teamId": team.id, "phoneNumber": owned, "provider": provider})
    assert r.status_code == 201, r.text
    pn = r.json()["phone_number"]
    assert pn["provider"] == provider and pn["provider_ref"] == fake.sid
    if provider == "twilio":  # inbound calls reach callfleet
        assert fake.voice_url == "https://callfleet.test/carriers/twilio/inbound"
    else:
        assert fake.connection_id == "1234567890"
    r = await c.client.post("/api/phone-numbers", headers=team.headers, json={
        "teamId": team.id, "phoneNumber": new_phone(area=718), "provider": provider})
    assert r.status_code == 400 and "phoneNumber" in r.json()["details"], r.text
    r = await c.client.delete(f"/api/phone-numbers/{pn['id']}", headers=team.headers)
    assert r.status_code == 200, r.text
    assert owned not in c.net.owned  # released at the carrier


async def test_inbound_calls_are_verified_with_the_numbers_own_account(
        carriers: Carriers, database: DbHandle, team: TeamCtx) -> None:
    c = carriers
    c.net.twilio_accounts[OWN_SID] = OWN_TOKEN
    r = await c.client.put("/api/team/carriers/twilio", headers=team.headers, json={
        "accountSid": OWN_SID, "authToken": OWN_TOKEN})
    assert r.status_code == 200, r.text
    owned = new_phone(area=718)
    c.net.own("twilio", owned)
    r = await c.client.post("/api/phone-numbers", headers=team.headers, json={
        "teamId": team.id, "phoneNumber": owned, "provider": "twilio"})
    assert r.status_code == 201, r.text
    url = "https://callfleet.test/carriers/twilio/inbound"
    form = {"CallSid": "CA" + "2" * 32, "To": owned, "From": "+12125550199",
            "CallStatus": "ringing", "AccountSid": OWN_SID}
    replies = {}
    for token in (OWN_TOKEN, "fake-twilio-auth-token-0123456789"):  # own, deployment's
        r = await c.client.post("/carriers/twilio/inbound", data=form, headers={
            "X-Twilio-Signature": c.net.twilio_sign(token, url, form)})
        replies[token] = r
    assert replies[OWN_TOKEN].status_code == 200, replies[OWN_TOKEN].text
    assert "<Say>" in replies[OWN_TOKEN].text and "<Hangup" in replies[OWN_TOKEN].text
    assert replies["fake-twilio-auth-token-0123456789"].status_code == 401
    await c.client.delete("/api/team/carriers/twilio", headers=team.headers)


async def test_a_telnyx_inbound_call_is_declined_politely(carriers: Carriers,
                                                          team: TeamCtx) -> None:
    c = carriers
    owned = new_phone(area=718)
    c.net.own("telnyx", owned)
    r = await c.client.post("/api/phone-numbers", headers=team.headers, json={
        "teamId": team.id, "phoneNumber": owned, "provider": "telnyx"})
    assert r.status_code == 201, r.text
    call = c.net.telnyx_inbound(owned, "+12125550142",
                                "https://callfleet.test/carriers/telnyx/webhook")
    for _ in range(4):  # initiated -> answer -> speak -> hang-up, one webhook at a time
        await c.net.deliver(call.sid)
    actions = [a["action"] for a in call.params["_actions"]]
    assert actions == ["answer", "speak", "hangup"], actions
    assert "cannot take calls" in call.params["_actions"][1]["payload"]
    assert all(sent["status"] == 204 for sent in call.sent)
