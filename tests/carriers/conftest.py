"""Real-carrier tests: callfleet with Twilio and Telnyx configured against the local fakes
(``callfleet.testing.fakecarriers``), which the official SDKs reach over real HTTP and which
post their signed callbacks into the app.

Every test here runs once per carrier (``provider``) and, like the rest of the suite, on
SQLite and on PostgreSQL when it is configured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from callfleet import ids
from callfleet.app import create_app
from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.clock import FixedClock
from callfleet.db.base import utcnow
from callfleet.testing.fakecarriers.network import (
    TELNYX_CONNECTION,
    TELNYX_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeNetwork,
)
from callfleet.testing.fakecarriers.serve import serving
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact, make_settings

PUBLIC_URL = "https://callfleet.test"
PROVIDERS = ["twilio", "telnyx"]
_numbers = count(1000)
_modules = count()


@dataclass
class Carriers:
    app: Any
    client: httpx.AsyncClient  # the API, in-process
    net: FakeNetwork
    fake_url: str

    @property
    def clock(self) -> FixedClock:
        return self.app.state.clock  # type: ignore[no-any-return]

    async def tick(self, rounds: int = 1, seconds: float = 1.0) -> None:
        """Dialer passes with the callbacks they cause delivered between them."""
        for _ in range(rounds):
            await self.app.state.dialer.tick()
            await self.net.deliver()
            await self.app.state.dialer.tick()
            self.clock.advance(seconds=seconds)


def carrier_settings(url: str, fake_url: str, **overrides: Any) -> Any:
    return make_settings(
        url, public_url=PUBLIC_URL, twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN, twilio_api_base_url=fake_url,
        telnyx_api_key=TELNYX_KEY, telnyx_connection_id=TELNYX_CONNECTION,
        telnyx_api_base_url=fake_url + "/v2", twilio_calls_per_second=5.0,
        telnyx_calls_per_second=5.0, **overrides)


@pytest.fixture(scope="module")
async def carriers(database: DbHandle) -> AsyncIterator[Carriers]:
    net = FakeNetwork()
    async with serving(net) as fake_url:
        settings = carrier_settings(database.url, fake_url,
                                    telnyx_public_key=net.public_key)
        # A Monday 10:00 in New York, a week later for every module: time never goes back
        # for the shared database's per-account pacing buckets.
        start = datetime(2031, 3, 3, 15, 0, tzinfo=UTC) + timedelta(weeks=next(_modules))
        app = create_app(settings, db=database.db, run_worker=False, clock=FixedClock(start))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
                net.http = client  # the fake's callbacks reach the app in-process
                net.clock = app.state.clock.now  # one time for both sides
                yield Carriers(app, client, net, fake_url)


def new_phone(area: int = 212) -> str:
    return f"+1{area}555{next(_numbers) % 10000:04d}"


async def assistant(database: DbHandle, t: TeamCtx, **fields: Any) -> str:
    values: dict[str, Any] = {
        "id": ids.new_id("asst"), "team_id": t.id, "name": "Setter", "type": "outbound",
        "template_id": "custom", "system_prompt": "You call {{contact.first_name}}.",
        "first_message": "Hi {{contact.first_name}}, this is Ava.", "provider": "openai",
        "model": "gpt-4o-mini", "temperature": 0.7, "max_tokens": 300, "language": "en",
        "recording_enabled": False, "inbound_enabled": False, "outbound_enabled": True,
        "voicemail_detection_enabled": True, "voicemail_action": "hangup", "end_call": {},
        "call_transfer": {}, "info_extraction": {}, "created_at": utcnow(), "updated_at": utcnow()}
    values.update(fields)
    async with database.db.session() as s:
        s.add(Assistant(**values))
        await s.commit()
    return str(values["id"])


async def buy_number(c: Carriers, t: TeamCtx, provider: str, assistant_id: str) -> dict[str, Any]:
    """Search and buy a number through the API from ``provider`` and give it to the
    assistant."""
    number = new_phone(area=646)
    c.net.stock(provider, [number])
    r = await c.client.post("/api/phone-numbers/search", headers=t.headers, json={
        "provider": provider, "filters": {"countryCode": "US", "areaCode": "646"}})
    assert r.status_code == 200, r.text
    assert r.json()["provider"] == provider
    assert number in [n["phoneNumber"] for n in r.json()["numbers"]]
    r = await c.client.post("/api/phone-numbers/purchase", headers=t.headers, json={
        "teamId": t.id, "phoneNumber": number, "provider": provider})
    assert r.status_code == 201, r.text
    pn = r.json()["phone_number"]
    r = await c.client.put(f"/api/assistants/{assistant_id}/phone-numbers",
                           headers=t.headers, json={"phoneNumberIds": [pn["id"]]})
    assert r.status_code == 200, r.text
    return dict(pn)


async def campaign(c: Carriers, database: DbHandle, t: TeamCtx, provider: str,
                   phones: list[str], **fields: Any) -> tuple[str, list[str]]:
    company = await make_company(c.client, t)
    asst = await assistant(database, t, **fields.pop("assistant", {}))
    pn = await buy_number(c, t, provider, asst)
    contact_ids = [(await make_contact(c.client, t, company, phone=p, firstName=f"C{i}"))["id"]
                   for i, p in enumerate(phones)]
    body = {"teamId": t.id, "assistantId": asst, "companyId": company,
            "fromNumberIds": [pn["id"]], "name": f"{provider} campaign",
            "callWindowStart": "00:00", "callWindowEnd": "23:59",
            "callWindowTimezone": "America/New_York", "maxConcurrentCalls": 50,
            "maxAttemptsPerContact": 1, **fields}
    r = await c.client.post("/api/crm/campaigns", json=body, headers=t.headers)
    assert r.status_code == 201, r.text
    cid = r.json()["campaign"]["id"]
    r = await c.client.post(f"/api/crm/campaigns/{cid}/contacts",
                            json={"contactIds": contact_ids}, headers=t.headers)
    assert r.status_code == 200, r.text
    c.clock.advance(seconds=5)  # the account's calls-per-second bucket refills
    return cid, contact_ids


async def calls_of(database: DbHandle, campaign_id: str) -> dict[str, Call]:
    async with database.db.session(write=False) as s:
        rows = await s.scalars(select(Call).where(Call.campaign_id == campaign_id))
        return {c.to_number: c for c in rows}


def later(c: Carriers, seconds: float) -> datetime:
    return c.clock.now() + timedelta(seconds=seconds)
