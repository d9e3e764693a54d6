"""Calls to a callfleet number answered by its assistant (docs/decisions/0042): the carrier is
told to stream the call's audio to the voice runtime, the call is written ``inbound`` with the
caller matched to a contact (created in the number's company when unknown), a repeated
webhook changes nothing, and an inbound opt-out puts the *caller* on the team's DNC list."""

from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import select

from callfleet.calls.models import Call
from callfleet.compliance.models import DncEntry
from callfleet.crm.models import Contact
from callfleet.dialer.outcomes import finish_call
from callfleet.voice.tokens import valid_token
from tests.carriers.conftest import Carriers, assistant, buy_number, new_phone
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact

pytest.importorskip("pipecat")  # the app answers inbound calls only with live voice


async def _call(database: DbHandle, carrier_call_id: str) -> Call:
    async with database.db.session(write=False) as s:
        found = await s.scalar(select(Call).where(Call.carrier_call_id == carrier_call_id))
        assert found is not None
        return found


async def test_twilio_inbound_call_streams_to_the_assistant(
        carriers: Carriers, database: DbHandle, team: TeamCtx) -> None:
    c = carriers
    desk = await assistant(database, team, inbound_enabled=True, type="inbound")
    pn = await buy_number(c, team, "twilio", desk)
    company = await make_company(c.client, team)
    r = await c.client.patch(f"/api/phone-numbers/{pn['id']}", headers=team.headers,
                             json={"companyId": company})
    assert r.status_code == 200 and r.json()["phone_number"]["company_id"] == company
    known = new_phone(area=917)
    contact = await make_contact(c.client, team, company, phone=known)
    url = "https://callfleet.test/carriers/twilio/inbound"
    replies = []
    for caller, sid in ((known, "CA" + "5" * 32), (new_phone(area=312), "CA" + "6" * 32),
                        (known, "CA" + "5" * 32)):  # the last: Twilio repeats a webhook
        form = {"CallSid": sid, "To": pn["phone_number"], "From": caller,
                "CallStatus": "ringing", "AccountSid": "AC" + "f" * 32,
                "Direction": "inbound"}
        r = await c.client.post("/carriers/twilio/inbound", data=form, headers={
            "X-Twilio-Signature": c.net.twilio_sign("fake-twilio-auth-token-0123456789",
                                                    url, form)})
        assert r.status_code == 200, r.text
        replies.append(r.text)
    stream = re.search(r'<Stream[^>]*url="wss://callfleet\.test/voice/twilio/([^/"]+)/([^"]+)"',
                       replies[0])
    assert stream is not None and "<Hangup" not in replies[0], replies[0]
    first = await _call(database, "CA" + "5" * 32)
    assert stream.group(1) == first.id and valid_token(first.id, stream.group(2))
    assert replies[2] == replies[0]  # the same call, not a second one
    assert first.direction == "inbound" and first.status == "in_progress"
    assert first.contact_id == contact["id"] and first.from_number == known
    assert first.to_number == pn["phone_number"] and first.assistant_id == desk
    second = await _call(database, "CA" + "6" * 32)
    async with database.db.session(write=False) as s:
        created = await s.get(Contact, second.contact_id)
        assert created is not None and created.company_id == company
        assert created.phone == second.from_number and created.source == "inbound call"
    r = await c.client.get("/api/calls", headers=team.headers, params={"direction": "inbound"})
    assert {x["id"] for x in r.json()["calls"]} == {first.id, second.id}
    # "Take me off your list" on an inbound call: the caller's number goes on the DNC list.
    async with database.db.session() as s:
        row = await s.get(Call, second.id)
        assert row is not None
        await finish_call(s, row, "opted_out", "customer_opted_out", c.clock.now())
        await s.commit()
    async with database.db.session(write=False) as s:
        dnc = set(await s.scalars(select(DncEntry.phone_number)
                                  .where(DncEntry.team_id == team.id)))
    assert second.from_number in dnc and pn["phone_number"] not in dnc


async def test_telnyx_inbound_call_is_answered_with_a_stream(
        carriers: Carriers, database: DbHandle, team: TeamCtx) -> None:
    c = carriers
    desk = await assistant(database, team, inbound_enabled=True, type="inbound")
    pn = await buy_number(c, team, "telnyx", desk)
    caller = new_phone(area=305)
    call = c.net.telnyx_inbound(pn["phone_number"], caller,
                                "https://callfleet.test/carriers/telnyx/webhook")
    await c.net.deliver(call.sid)
    answer = call.params["_actions"][0]
    assert answer["action"] == "answer", call.params["_actions"]
    row = await _call(database, call.sid)
    assert base64.b64decode(answer["client_state"]).decode() == row.id
    assert answer["stream_url"].startswith(f"wss://callfleet.test/voice/telnyx/{row.id}/")
    assert answer["stream_bidirectional_mode"] == "rtp"
    assert answer["stream_bidirectional_codec"] == "PCMU"
    assert row.direction == "inbound" and row.from_number == caller
    # Later webhooks name the call by client_state; the hang-up ends it.
    c.net.hang_up(call)
    await c.net.deliver(call.sid)
    row = await _call(database, call.sid)
    assert row.status == "ended"
    assert all(sent["status"] == 204 for sent in call.sent)


async def test_a_twilio_inbound_call_whose_stream_never_opened_ends_by_status_callback(
        carriers: Carriers, database: DbHandle, team: TeamCtx) -> None:
    """The caller hung up before the stream opened: the number's status callback (set when
    the number was bought) ends the call, found by its CallSid."""
    c = carriers
    desk = await assistant(database, team, inbound_enabled=True, type="inbound")
    pn = await buy_number(c, team, "twilio", desk)
    number = c.net.owned[pn["phone_number"]]
    assert number.status_url == "https://callfleet.test/carriers/twilio/status"
    sid = "CA" + "7" * 32
    form = {"CallSid": sid, "To": pn["phone_number"], "From": new_phone(area=415),
            "CallStatus": "ringing", "AccountSid": "AC" + "f" * 32, "Direction": "inbound"}
    token = "fake-twilio-auth-token-0123456789"
    r = await c.client.post("/carriers/twilio/inbound", data=form, headers={
        "X-Twilio-Signature": c.net.twilio_sign(token, number.voice_url or "", form)})
    assert r.status_code == 200 and "<Stream" in r.text
    done = {**form, "CallStatus": "completed", "CallDuration": "0"}
    r = await c.client.post("/carriers/twilio/status", data=done, headers={
        "X-Twilio-Signature": c.net.twilio_sign(token, number.status_url, done)})
    assert r.status_code == 204, r.text
    row = await _call(database, sid)
    assert row.status == "ended" and row.direction == "inbound"


async def test_a_failed_telnyx_stream_hangs_the_call_up(
        carriers: Carriers, database: DbHandle, team: TeamCtx) -> None:
    """Telnyx keeps a call up when its media stream fails (Twilio ends it): callfleet hangs
    up through the adapter rather than leave the callee in silence."""
    c = carriers
    desk = await assistant(database, team, inbound_enabled=True, type="inbound")
    pn = await buy_number(c, team, "telnyx", desk)
    call = c.net.telnyx_inbound(pn["phone_number"], new_phone(area=305),
                                "https://callfleet.test/carriers/telnyx/webhook")
    await c.net.deliver(call.sid)  # initiated -> answered with a stream
    failed = c.net.telnyx_event(call, "call.streaming.failed",
                                failure_reason="connection refused")
    status = await c.net.send(call, "call.streaming.failed", call.params["webhook_url"], failed)
    assert status == 204
    assert [a["action"] for a in call.params["_actions"]][-1] == "hangup"
    await c.net.deliver(call.sid)
    assert (await _call(database, call.sid)).status == "ended"


async def test_twilios_signature_on_the_media_streams_opening_is_checked(
        carriers: Carriers, database: DbHandle, team: TeamCtx) -> None:
    """Twilio signs the WebSocket's opening request (``X-Twilio-Signature`` over the stream
    URL its TwiML named, under the call's account token): the voice runtime checks it when
    it is sent; one made with another token, or for another call's URL, does not hold."""
    c = carriers
    desk = await assistant(database, team, inbound_enabled=True, type="inbound")
    pn = await buy_number(c, team, "twilio", desk)
    url = "https://callfleet.test/carriers/twilio/inbound"
    form = {"CallSid": "CA" + "a" * 32, "To": pn["phone_number"], "From": new_phone(area=415),
            "CallStatus": "ringing", "AccountSid": "AC" + "f" * 32, "Direction": "inbound"}
    r = await c.client.post("/carriers/twilio/inbound", data=form, headers={
        "X-Twilio-Signature": c.net.twilio_sign("fake-twilio-auth-token-0123456789",
                                                url, form)})
    assert r.status_code == 200, r.text
    found = re.search(r'<Stream[^>]*url="(wss://[^"]+)"', r.text)
    assert found is not None
    stream = found.group(1)
    call = await _call(database, "CA" + "a" * 32)
    planner = c.app.state.voice.planner
    good = c.net.twilio_sign("fake-twilio-auth-token-0123456789", stream, {})
    assert await planner.handshake_signed("twilio", call.id, good)
    assert not await planner.handshake_signed(
        "twilio", call.id, c.net.twilio_sign("another-token", stream, {}))
    assert not await planner.handshake_signed(
        "twilio", call.id, c.net.twilio_sign("fake-twilio-auth-token-0123456789",
                                             stream + "x", {}))
    assert not await planner.handshake_signed("telnyx", call.id, good)
