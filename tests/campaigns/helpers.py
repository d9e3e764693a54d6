"""Shared set-up for campaign tests: an assistant with numbers, contacts, a campaign."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from callfleet import ids
from callfleet.assistants.models import Assistant
from callfleet.db.base import utcnow
from callfleet.numbers.models import PhoneNumber
from tests.conftest import DbHandle, TeamCtx, make_company, make_contact

_counter = iter(range(10_000_000))


async def assistant_with_numbers(database: DbHandle, t: TeamCtx, n: int = 1) -> tuple[str, list[str]]:
    """An outbound assistant and ``n`` active numbers assigned to it."""
    async with database.db.session() as s:
        a = Assistant(
            id=ids.new_id("asst"), team_id=t.id, name="Setter", type="outbound",
            template_id="custom", system_prompt="You call {{contact.first_name}}.",
            first_message="Hi {{contact.first_name}}, this is Ava from {{company.name}}.",
            provider="openai", model="gpt-4o-mini", temperature=0.7, max_tokens=300,
            language="en", recording_enabled=False, inbound_enabled=False,
            outbound_enabled=True, voicemail_detection_enabled=True,
            voicemail_action="leave_message", voicemail_message="Please call us back.",
            end_call={}, call_transfer={}, info_extraction={}, created_at=utcnow(),
            updated_at=utcnow(),
        )
        s.add(a)
        await s.flush()
        numbers = []
        for _ in range(n):
            k = next(_counter)
            pn = PhoneNumber(
                id=ids.new_id("pn"), team_id=t.id, assistant_id=a.id, provider="sim",
                status="active", phone_number=f"+1646{2000000 + k:07d}",
                number_type="local", capabilities=["voice"], created_at=utcnow(),
                updated_at=utcnow(),
            )
            s.add(pn)
            numbers.append(pn.id)
        await s.commit()
    return a.id, numbers


def us_phone(i: int, area: int = 212) -> str:
    return f"+1{area}{200 + i // 10000:03d}{i % 10000:04d}"


async def setup_campaign(
    client: httpx.AsyncClient, database: DbHandle, t: TeamCtx, contacts: list[dict[str, Any]],
    **campaign: Any,
) -> tuple[str, list[str]]:
    company = await make_company(client, t)
    assistant, numbers = await assistant_with_numbers(database, t)
    contact_ids = []
    for c in contacts:
        contact_ids.append((await make_contact(client, t, company, **c))["id"])
    body = {"teamId": t.id, "assistantId": assistant, "companyId": company,
            "fromNumberIds": numbers, "name": "Q1 Trade Show Follow-Up",
            "callWindowStart": "00:00", "callWindowEnd": "23:59",
            "callWindowTimezone": "America/New_York", **campaign}
    r = await client.post("/api/crm/campaigns", json=body, headers=t.headers)
    assert r.status_code == 201, r.text
    cid = r.json()["campaign"]["id"]
    r = await client.post(f"/api/crm/campaigns/{cid}/contacts",
                          json={"contactIds": contact_ids}, headers=t.headers)
    assert r.status_code == 200, r.text
    return cid, contact_ids


async def drive(app: Any, until: Any, *, step: timedelta = timedelta(seconds=5),
                limit: int = 5000) -> int:
    """Advance the fixed clock and run dialer passes until ``until()`` is true."""
    for n in range(limit):
        await app.state.dialer.tick()
        if await until():
            return n
        app.state.clock.advance(seconds=step.total_seconds())
    raise AssertionError("condition not reached")


_week = iter(range(1, 100_000))
BASE = datetime(2030, 1, 7, 15, 0, tzinfo=UTC)  # a Monday, 10:00 in New York


def fresh_monday(app: Any, hour_utc: int = 15) -> datetime:
    """Move the shared fixed clock to a later Monday at ``hour_utc`` (time only moves on)."""
    at = BASE + timedelta(weeks=next(_week) * 2)
    at = at.replace(hour=hour_utc)
    app.state.clock.at = max(app.state.clock.at, at)
    if app.state.clock.at != at:
        at = app.state.clock.at + timedelta(weeks=1)
        at = at - timedelta(days=at.weekday())
        at = at.replace(hour=hour_utc, minute=0, second=0, microsecond=0)
        app.state.clock.at = at
    return at
