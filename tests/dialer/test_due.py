"""When an idle dialer next has work (dialer/due.py), and that its run loop, waiting with a
back-off far longer than that, wakes on time for it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from callfleet import ids
from callfleet.calls.models import Call
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.carriers.sim.carrier import SimCarrier
from callfleet.carriers.sim.models import SimCall
from callfleet.clock import Clock
from callfleet.crm.models import Company, Contact
from callfleet.db.base import utcnow
from callfleet.db.session import Database
from callfleet.dialer.due import next_due
from callfleet.dialer.engine import Dialer
from callfleet.teams.service import create_team
from tests.campaigns.helpers import assistant_with_numbers
from tests.conftest import DbHandle, TeamCtx, make_settings


async def seed(database: DbHandle, contacts: int = 3) -> dict[str, Any]:
    async with database.db.session() as s:
        team, _ = await create_team(s, "Due")
        # Due times at whatever hour the test runs: informational calls, exempt from the
        # telemarketing calling hours (docs/compliance.md).
        team.settings = {"compliance": {"time_rules_for_all_purposes": False}}
        await s.commit()
    assistant, numbers = await assistant_with_numbers(database, TeamCtx(team.id, team.slug, ""))
    async with database.db.session() as s:
        company = Company(id=ids.new_id("comp"), team_id=team.id, name="Due Inc",
                          name_lower="due inc", custom_fields={})
        s.add(company)
        people = [Contact(id=ids.new_id("cont"), team_id=team.id, company_id=company.id,
                          first_name=f"C{i}", last_name="Due", phone=f"+1212555{1000 + i}",
                          timezone="America/New_York", custom_fields={}, tags=[])
                  for i in range(contacts)]
        s.add_all(people)
        await s.commit()
    return {"team": team.id, "assistant": assistant, "numbers": numbers,
            "company": company.id, "contacts": [c.id for c in people]}


async def add_campaign(db: Database, ctx: dict[str, Any], status: str,
                       enrollments: list[tuple[str, datetime | None]] = (),  # type: ignore[assignment]
                       **extra: Any) -> str:
    async with db.session() as s:
        c = Campaign(id=ids.new_id("camp"), team_id=ctx["team"], assistant_id=ctx["assistant"],
                     company_id=ctx["company"], from_number_ids=ctx["numbers"], name="Due",
                     status=status, call_window_start="00:00", call_window_end="23:59",
                     call_window_timezone="America/New_York", call_window_days=[
                         "mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                     retry={}, settings={}, active_calls=0, **extra)
        s.add(c)
        await s.flush()
        for contact, at in enrollments:
            s.add(Enrollment(id=ids.new_id("cc"), team_id=ctx["team"], campaign_id=c.id,
                             contact_id=contact, status="pending", priority=0, attempts=0,
                             outcome_counts={}, answered=False, next_attempt_at=at,
                             created_at=utcnow(), updated_at=utcnow()))
        await s.commit()
        return c.id


async def test_next_due_is_the_earliest_known_work(own_database: DbHandle) -> None:
    db = own_database.db
    now = datetime.now(UTC).replace(microsecond=0)
    ctx = await seed(own_database)
    a, b, c = ctx["contacts"]
    assert await next_due(db, now) is None
    await add_campaign(db, ctx, "scheduled", scheduled_start_at=now + timedelta(hours=3))
    assert await next_due(db, now) == now + timedelta(hours=3)
    # Paused and draft campaigns' enrollments are nobody's work.
    await add_campaign(db, ctx, "paused", [(a, now + timedelta(minutes=1))])
    await add_campaign(db, ctx, "draft", [(a, None)])
    assert await next_due(db, now) == now + timedelta(hours=3)
    running = await add_campaign(db, ctx, "running", [(a, now + timedelta(hours=2)),
                                                       (b, now + timedelta(hours=4))])
    assert await next_due(db, now) == now + timedelta(hours=2)
    async with db.session() as s:
        s.add(Call(id=ids.new_id("call"), team_id=ctx["team"], status="in_progress",
                   from_number="+1", to_number="+2", messages=[], analysis={},
                   call_metadata={}, lease_expires_at=now + timedelta(minutes=30)))
        s.add(Call(id=ids.new_id("call"), team_id=ctx["team"], status="ended",
                   from_number="+1", to_number="+2", messages=[], analysis={},
                   call_metadata={}, lease_expires_at=now + timedelta(minutes=1)))
        await s.commit()
    assert await next_due(db, now) == now + timedelta(minutes=30)  # a lease runs out
    # The audience of a running all_eligible campaign is looked at every few seconds.
    await add_campaign(db, ctx, "running", audience="all_eligible")
    assert await next_due(db, now, now + timedelta(seconds=4)) == now + timedelta(seconds=4)
    # An enrollment with no time is due now.
    async with db.session() as s:
        s.add(Enrollment(id=ids.new_id("cc"), team_id=ctx["team"], campaign_id=running,
                         contact_id=c, status="pending", priority=0, attempts=0,
                         outcome_counts={}, answered=False, next_attempt_at=None,
                         created_at=utcnow(), updated_at=utcnow()))
        await s.commit()
    assert await next_due(db, now) == now
    # The simulated network's next event.
    carrier = SimCarrier(db, Clock(1.0), mix="answer=100", invalid_percent=0)
    assert await carrier.next_event_at() is None
    await carrier.place_calls([("call_due1", "+16462000001", "+12125551000")])
    async with db.session(write=False) as s:
        first = await s.scalar(select(SimCall.next_event_at))
    assert first is not None and await carrier.next_event_at() == first


async def test_an_idle_dialer_wakes_at_the_next_due_time(own_database: DbHandle) -> None:
    """The loop's back-off is 30 s here; the contact due in 1.5 s is dialed on time."""
    db = own_database.db
    ctx = await seed(own_database, contacts=1)
    settings = make_settings(own_database.url, dialer_tick_seconds=30, idle_max_seconds=30,
                             legal_hours_start="00:00", legal_hours_end="23:59",
                             sim_instant=True)
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    await add_campaign(db, ctx, "running", [(ctx["contacts"][0], due)],
                       max_concurrent_calls=3, max_attempts_per_contact=1)
    clock = Clock(1.0)
    dialer = Dialer(db, clock, SimCarrier(db, clock, mix="answer=100", invalid_percent=0,
                                          instant=True), settings)
    stop = asyncio.Event()
    started = time.monotonic()
    task = asyncio.create_task(dialer.run(stop))
    try:
        for _ in range(500):  # a bounded poll (10 s)
            async with db.session(write=False) as s:
                placed = await s.scalar(select(Call.started_at))
            if placed is not None:
                break
            await asyncio.sleep(0.02)
        waited = time.monotonic() - started
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert placed is not None, "never dialed"
    assert placed >= due and 1.0 <= waited < 8.0, (placed, due, waited)
