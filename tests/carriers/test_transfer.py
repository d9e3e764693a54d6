"""Transfers through the carriers' APIs: cold (the call is handed to the number) and warm
(the transferee is briefed first: Twilio's whisper says a text, Telnyx plays an audio URL)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.carriers.conftest import PROVIDERS, Carriers, calls_of, campaign, new_phone
from tests.conftest import DbHandle, TeamCtx

pytestmark = pytest.mark.parametrize("provider", PROVIDERS)


async def live_call(c: Carriers, database: DbHandle, team: TeamCtx, provider: str) -> object:
    phone = new_phone()
    cid, _ = await campaign(c, database, team, provider, [phone])
    r = await c.client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
    assert r.json()["started"] == 1, r.text
    return (await calls_of(database, cid))[phone]


async def test_cold_and_warm_transfers(carriers: Carriers, database: DbHandle, team: TeamCtx,
                                       provider: str) -> None:
    c = carriers
    router = c.app.state.carrier
    desk = new_phone(area=917)
    cold = await live_call(c, database, team, provider)
    await router.transfer(cold.carrier_call_id, desk)
    warm = await live_call(c, database, team, provider)
    await router.transfer(warm.carrier_call_id, desk, briefing="Sarah wants a demo.",
                          briefing_audio_url="https://callfleet.test/briefings/1.wav")
    if provider == "twilio":
        (cold_update,) = c.net.calls[cold.carrier_call_id].params["_updates"]
        assert f"<Dial callerId=\"{cold.from_number}\"" in cold_update["Twiml"]
        assert f"<Number>{desk}</Number>" in cold_update["Twiml"]
        (warm_update,) = c.net.calls[warm.carrier_call_id].params["_updates"]
        twiml = warm_update["Twiml"]
        start = twiml.index('url="') + 5
        whisper = twiml[start:twiml.index('"', start)].replace("&amp;", "&")
        assert whisper.startswith("https://callfleet.test/carriers/twilio/whisper?call=")
        # Twilio fetches the whisper, signed; callfleet answers with the briefing.
        form = {"CallSid": "CA" + "3" * 32, "To": desk}
        path = whisper.removeprefix("https://callfleet.test")
        r = await c.client.post(path, data=form, headers={
            "X-Twilio-Signature": c.net.twilio_sign("fake-twilio-auth-token-0123456789",
                                                    whisper, form)})
        assert r.status_code == 200 and "<Say>Sarah wants a demo.</Say>" in r.text, r.text
        assert parse_qs(urlsplit(whisper).query)["call"] == [warm.id]
        r = await c.client.post(path, data=form)  # unsigned: refused
        assert r.status_code == 401
    else:
        (cold_action,) = c.net.calls[cold.carrier_call_id].params["_actions"]
        assert cold_action["action"] == "transfer" and cold_action["to"] == desk
        assert cold_action["from"] == cold.from_number and "audio_url" not in cold_action
        (warm_action,) = c.net.calls[warm.carrier_call_id].params["_actions"]
        assert warm_action["audio_url"] == "https://callfleet.test/briefings/1.wav"
