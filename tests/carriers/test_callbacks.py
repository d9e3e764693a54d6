"""Callbacks that can be trusted: a forged or unsigned callback is refused with 401 and
changes nothing; replayed, duplicate and out-of-order callbacks change nothing; a worker that
died after dialing is reconciled from the carrier's own record and never re-dials."""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update

from callfleet.calls.models import Call
from callfleet.campaigns.models import Campaign
from tests.carriers.conftest import PROVIDERS, Carriers, calls_of, campaign, new_phone
from tests.conftest import DbHandle, TeamCtx

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)


async def dialed(c: Carriers, database: DbHandle, team: TeamCtx, provider: str,
                 behaviour: str = "answer") -> tuple[Call, str]:
    phone = new_phone()
    c.net.behave(phone, behaviour)
    cid, _ = await campaign(c, database, team, provider, [phone])
    r = await c.client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
    assert r.json()["started"] == 1, r.text
    call = (await calls_of(database, cid))[phone]
    return call, cid


async def test_forged_and_unsigned_callbacks_are_refused(carriers: Carriers,
                                                        database: DbHandle, team: TeamCtx,
                                                        provider: str) -> None:
    c = carriers
    call, cid = await dialed(c, database, team, provider)

    def refused() -> float:
        return REGISTRY.get_sample_value("callfleet_carrier_callbacks_total",
                                         {"carrier": provider, "result": "refused"}) or 0.0

    refused_before = refused()
    fake = c.net.calls[call.carrier_call_id]
    _, url, data = fake.queue[0]
    if provider == "twilio":
        form = {**data, "CallStatus": "completed", "CallDuration": "30"}
        path = url.removeprefix("https://callfleet.test")
        attempts = [
            {},  # no signature
            {"X-Twilio-Signature": c.net.twilio_sign("wrong-token", url, form)},
            # Signed for another call's URL: the call id is part of what is signed.
            {"X-Twilio-Signature": c.net.twilio_sign(
                "fake-twilio-auth-token-0123456789", url.replace(call.id, "call_x"), form)},
        ]
        for headers in attempts:
            r = await c.client.post(path, data=form, headers=headers)
            assert r.status_code == 401, r.text
    else:
        body = json.dumps({"data": {**data["data"], "event_type": "call.hangup", "payload": {
            **data["data"]["payload"], "hangup_cause": "normal_clearing"}}}).encode()
        stale = int(time.time()) - 600
        good = c.net.telnyx_sign(body)
        attempts = [
            {"content-type": "application/json"},  # no signature
            {**good, "telnyx-timestamp": str(int(good["telnyx-timestamp"]) + 1)},  # altered
            c.net.telnyx_sign(body, timestamp=stale),  # too old: a replay
            {**good, "telnyx-signature-ed25519": good["telnyx-signature-ed25519"][:-4] + "AAA="},
        ]
        for headers in attempts:
            r = await c.client.post("/carriers/telnyx/webhook", content=body, headers=headers)
            assert r.status_code == 401, r.text
    after = (await calls_of(database, cid))[call.to_number]
    assert after.status == "dialing" and after.outcome is None
    assert refused() == refused_before + len(attempts)  # what an operator sees on /metrics


async def test_replayed_duplicate_and_out_of_order_callbacks_change_nothing(
        carriers: Carriers, database: DbHandle, team: TeamCtx, provider: str) -> None:
    c = carriers
    call, cid = await dialed(c, database, team, provider)
    fake = c.net.calls[call.carrier_call_id]
    # Out of order: the end arrives first, the ringing and the answer after it.
    fake.queue.reverse()
    await c.net.deliver(fake.sid)
    first = (await calls_of(database, cid))[call.to_number]
    assert (first.status, first.outcome) == ("ended", "answered")
    assert first.answered_at is not None
    for i in range(len(fake.sent)):  # every callback again, byte for byte
        assert await c.net.replay(fake.sid, i) in (200, 204)
    again = (await calls_of(database, cid))[call.to_number]
    assert (again.status, again.outcome, again.ended_at, again.answered_at) == (
        first.status, first.outcome, first.ended_at, first.answered_at)
    r = await c.client.get(f"/api/calls/{call.id}", headers=team.headers)
    kinds = [e["type"] for e in r.json()["call"]["events"]]
    assert kinds.count("call.completed") == 1 and kinds.count("call.answered") == 1


async def test_a_worker_that_died_after_dialing_is_reconciled_never_redialed(
        carriers: Carriers, database: DbHandle, team: TeamCtx, provider: str) -> None:
    c = carriers
    call, cid = await dialed(c, database, team, provider)
    sid = call.carrier_call_id
    # The worker died right after the carrier accepted the dial (the carrier's call id was
    # never written), and callfleet was down while the call was set up: only its end is
    # still to come.
    async with database.db.session() as s:
        await s.execute(update(Call).where(Call.id == call.id).values(carrier_call_id=None))
        await s.commit()
    c.net.lose(sid, keep=1)
    dials = len(c.net.dial_times)
    c.clock.advance(seconds=120)  # the lease expired
    await c.app.state.dialer.tick()
    live = (await calls_of(database, cid))[call.to_number]
    assert live.status != "ended" and live.carrier_call_id == sid  # found at the carrier
    assert live.lease_expires_at is not None and live.lease_expires_at > c.clock.now()
    await c.net.deliver(sid)  # the end arrives
    after = (await calls_of(database, cid))[call.to_number]
    assert (after.status, after.outcome) == ("ended", "answered"), after.ended_reason
    assert len(c.net.dial_times) == dials  # never dialed again


async def test_an_end_whose_callbacks_were_lost_is_read_from_the_carrier(
        carriers: Carriers, database: DbHandle, team: TeamCtx, provider: str) -> None:
    c = carriers
    answered, _ = await dialed(c, database, team, provider)
    lost = c.net.lose(answered.carrier_call_id)  # callfleet was down the whole call
    assert lost >= 3
    c.clock.advance(seconds=120)
    await c.app.state.dialer.tick()
    (after,) = (await calls_of(database, answered.campaign_id or "")).values()
    assert (after.status, after.outcome) == ("ended", "answered"), after.ended_reason
    assert after.duration_seconds is not None and after.duration_seconds > 0


async def test_a_dial_that_never_reached_the_carrier_is_failed_not_redialed(
        carriers: Carriers, database: DbHandle, team: TeamCtx, provider: str) -> None:
    c = carriers
    phone = new_phone()
    cid, _ = await campaign(c, database, team, provider, [phone])
    async with database.db.session() as s:  # the campaign runs
        await s.execute(update(Campaign).where(Campaign.id == cid).values(status="running"))
        await s.commit()
    placements = await c.app.state.dialer.claim_campaign(cid, c.clock.now(), 1)
    assert len(placements) == 1  # committed as dialing; the worker dies before dialing
    dials = len(c.net.dial_times)
    c.clock.advance(seconds=120)
    await c.app.state.dialer.reconcile(c.clock.now())
    after = (await calls_of(database, cid))[phone]
    assert (after.status, after.outcome, after.ended_reason) == (
        "ended", "failed", "dial_not_confirmed")
    assert len(c.net.dial_times) == dials


async def test_a_carrier_that_cannot_answer_keeps_the_call_watched(
        carriers: Carriers, database: DbHandle, team: TeamCtx, provider: str) -> None:
    """Reconciliation while the carrier's API fails: the call's lease is renewed, nothing
    is invented (no carrier id, no outcome), and its callbacks still apply afterwards."""
    c = carriers
    call, cid = await dialed(c, database, team, provider)
    sid = call.carrier_call_id
    async with database.db.session() as s:
        await s.execute(update(Call).where(Call.id == call.id).values(carrier_call_id=None))
        await s.commit()
    c.net.rate_limited = True
    saved = dict(c.net.twilio_accounts), dict(c.net.telnyx_keys)
    c.net.twilio_accounts.clear()  # every request of the account now fails
    c.net.telnyx_keys.clear()
    try:
        c.clock.advance(seconds=120)
        await c.app.state.dialer.reconcile(c.clock.now())
    finally:
        c.net.rate_limited = False
        c.net.twilio_accounts.update(saved[0])
        c.net.telnyx_keys.update(saved[1])
    watched = (await calls_of(database, cid))[call.to_number]
    assert watched.status == "dialing" and watched.carrier_call_id is None
    assert watched.lease_expires_at is not None and watched.lease_expires_at > c.clock.now()
    await c.net.deliver(sid)
    after = (await calls_of(database, cid))[call.to_number]
    assert (after.status, after.outcome, after.carrier_call_id) == ("ended", "answered", sid)
