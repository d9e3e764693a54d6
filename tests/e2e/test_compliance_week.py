"""A simulated week of AI-voice telemarketing to contacts in several states, run by a real
`callfleet worker` process on the simulated carrier at CALLFLEET_TIME_SCALE, with an
always-open campaign window: afterwards every call is checked against every applicable rule
by a minute-scan oracle (not the interval code that placed it), every cap against a rolling
count, and every deferral for its recorded reason.

The week (Wed 2026-07-01 to Wed 07-08) holds Independence Day: Friday the 3rd is observed in
Utah, Alabama, Pennsylvania and Louisiana, Saturday the 4th is the day itself, Monday the 6th
is Rhode Island's observed day; and a Sunday (closed in AL, LA, MS, RI, UT).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from callfleet import ids
from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.campaigns import enrollments, lifecycle
from callfleet.campaigns import service as campaigns
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.clock import ClockAnchor, real_now
from callfleet.compliance.jurisdiction import resolve
from callfleet.compliance.models import DialDecision
from callfleet.compliance.schedule import DEFAULT_MARGIN, Scope
from callfleet.compliance.table import shipped_table
from callfleet.crm import fields as F
from callfleet.crm.models import Company, Contact
from callfleet.db.base import utcnow
from callfleet.db.migrate import migrate
from callfleet.db.session import open_database
from callfleet.dialer.rules import LegalHours
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.principal import Principal
from callfleet.teams.service import create_team
from tests.compliance.test_schedule import applicable, brute_force

SCALE = 12_000.0
START = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
TABLE = shipped_table()
# (state, area code, zone): contacts with an explicit state, a number of that state, a zone.
PLACES = [("FL", "305", "America/New_York"), ("RI", "401", "America/New_York"),
          ("TX", "214", "America/Chicago"), ("UT", "801", "America/Denver"),
          ("LA", "504", "America/Chicago"), ("ME", "207", "America/New_York"),
          ("AL", "205", "America/Chicago"), ("PA", "215", "America/New_York"),
          ("OK", "405", "America/Chicago"), ("MS", "601", "America/Chicago"),
          ("GA", "404", "America/New_York"), ("CA", "415", "America/Los_Angeles")]
PER_PLACE = 4
GREETING = ("Hi {{contact.first_name}}, this is an AI assistant calling for Acme Solar. Say "
            "stop at any time and we will never call again.")


async def _seed(url: str) -> str:
    db = open_database(url)
    await migrate(db)
    async with db.session() as s:
        s.add(ClockAnchor(id=1, scale=SCALE, real_anchor=real_now(), sim_anchor=START))
        team, _ = await create_team(s, "Acme Solar")
        team.settings = {"compliance": {
            "business_name": "Acme Solar", "callback_number": "+12125550100",
            "attestations": ["natural_voice_announcement",
                             "established_business_relationship"]}}
        p = Principal(team.id, team.slug, "test")
        company = Company(id=ids.new_id("comp"), team_id=team.id, name="Prospects",
                          name_lower="prospects", custom_fields={}, created_at=utcnow(),
                          updated_at=utcnow())
        assistant = Assistant(id=ids.new_id("asst"), team_id=team.id, name="Ava",
                              first_message=GREETING, end_call={}, call_transfer={},
                              info_extraction={}, outbound_enabled=True,
                              voicemail_action="hangup", created_at=utcnow(),
                              updated_at=utcnow())
        s.add_all([company, assistant])
        await s.flush()
        pn = PhoneNumber(id=ids.new_id("pn"), team_id=team.id, assistant_id=assistant.id,
                         phone_number="+12125550100", provider="sim", status="active",
                         capabilities=["voice"], created_at=utcnow(), updated_at=utcnow())
        s.add(pn)
        rows = []
        for k, (state, area, zone) in enumerate(PLACES):
            for i in range(PER_PLACE):
                phone = f"+1{area}{5550100 + 10 * k + i:07d}"
                rows.append(Contact(
                    id=ids.new_id("cont"), team_id=team.id, company_id=company.id,
                    first_name=f"{state}{i}", last_name="X", phone=phone, state=state,
                    timezone=zone if i % 2 == 0 else None, lead_status="new",
                    do_not_call=False, consent_kind="prior_express_written",
                    consent_source="web form", custom_fields={}, tags=[],
                    search_text=F.search_text(f"{state}{i}", "X", None, phone, None),
                    created_at=utcnow(), updated_at=utcnow()))
        # a toll-free number with no address: the conservative default
        rows.append(Contact(
            id=ids.new_id("cont"), team_id=team.id, company_id=company.id, first_name="TF",
            last_name="X", phone="+18005550199", lead_status="new", do_not_call=False,
            consent_kind="prior_express_written", custom_fields={}, tags=[],
            search_text="tf x", created_at=utcnow(), updated_at=utcnow()))
        s.add_all(rows)
        await s.flush()
        created = await campaigns.create_campaign(s, p, {
            "assistant_id": assistant.id, "company_id": company.id,
            "from_number_ids": [pn.id], "name": "week", "purpose": "telemarketing",
            "call_window_start": "00:00", "call_window_end": "00:00",
            "call_window_timezone": "UTC", "max_concurrent_calls": 20,
            "max_attempts_per_contact": 200, "retry_delay_minutes": 60,
        }, START)
        await campaigns.add_contacts(s, p, created["id"], [c.id for c in rows], None)
        c = await s.get(Campaign, created["id"])
        assert c is not None
        await enrollments.skip_uncallable(s, c, dry_run=False)
        await lifecycle.transition(s, c, "running", START)
        await s.commit()
    await db.dispose()
    return str(created["id"])


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "callfleet.cli", "worker"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


async def _sim_now(url: str) -> datetime:
    db = open_database(url, null_pool=True)
    try:
        async with db.session(write=False) as s:
            row = await s.get(ClockAnchor, 1)
            assert row is not None
            return row.sim_anchor + (real_now() - row.real_anchor) * row.scale
    finally:
        await db.dispose()


async def test_a_week_of_calls_keeps_every_rule(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'week.db'}"
    campaign_id = await _seed(url)
    env = {**os.environ, "CALLFLEET_DATABASE_URL": url, "CALLFLEET_TIME_SCALE": str(SCALE),
           "CALLFLEET_DATA_DIR": str(tmp_path), "CALLFLEET_DIALER_TICK_SECONDS": "0.05",
           "CALLFLEET_SIM_MIX": "no_answer=75,busy=25",
           "CALLFLEET_SIM_INVALID_PERCENT": "0", "CALLFLEET_LOG_LEVEL": "WARNING"}
    log = tmp_path / "worker.log"
    proc = _start_worker(env, log)
    try:
        deadline = time.monotonic() + 180
        while await _sim_now(url) < START + WEEK:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the simulated week did not pass in time"
            await asyncio.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    await _verify(url, campaign_id)


async def _verify(url: str, campaign_id: str) -> None:
    db = open_database(url, null_pool=True)
    try:
        async with db.session(write=False) as s:
            calls = list(await s.scalars(select(Call).where(Call.campaign_id == campaign_id)))
            contacts = {c.id: c for c in await s.scalars(select(Contact))}
            decisions = list(await s.scalars(select(DialDecision)))
            waiting = list(await s.scalars(select(Enrollment).where(
                Enrollment.campaign_id == campaign_id, Enrollment.status == "pending")))
    finally:
        await db.dispose()
    assert len(calls) > 50, len(calls)  # the week really was a week of calling
    scope = Scope(purpose="telemarketing")
    legal = LegalHours()
    by_contact: dict[str, list[datetime]] = defaultdict(list)
    for call in calls:
        assert call.started_at is not None
        by_contact[str(call.contact_id)].append(call.started_at)
    checked_states: set[str] = set()
    for contact_id, starts in by_contact.items():
        c = contacts[contact_id]
        jset = resolve(TABLE, state=c.state, phone=c.phone, contact_tz=c.timezone,
                       fallback_zone="UTC")
        rules = applicable(sorted(jset.codes), scope)
        zones = list(jset.zone_names)
        for at in starts:
            # The oracle reads every rule at the start instant and at each minute of the
            # margin after it (rule boundaries are whole minutes, so that covers the span).
            ok = brute_force(rules, zones, legal, None, [], DEFAULT_MARGIN, at, 1)
            assert ok == [True], (c.state, c.phone, at.isoformat())
        checked_states.update(j for j in jset.codes if j.startswith("US-"))
    assert {"US-FL", "US-RI", "US-TX", "US-UT", "US-ME", "US-PA"} <= checked_states
    # Caps: never more than 3 calls to a Florida or Oklahoma number in any 24 hours, never
    # more than 1 answered call to a Maine number in any 8 hours.
    by_number: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_number[call.to_number].append(call)
    for number, made in by_number.items():
        times = sorted(x.started_at for x in made if x.started_at)
        if number[2:5] in ("305", "405"):
            for i, t in enumerate(times):
                assert len([x for x in times[i:] if x < t + timedelta(hours=24)]) <= 3, number
    # Every deferral and refusal has its reason, rules, and (deferrals) the next time.
    deferrals = [d for d in decisions if d.outcome == "defer"]
    assert deferrals
    for d in deferrals:
        assert d.reason and d.rules_fired and d.next_allowed_at and d.jurisdictions, d.id
        assert d.table_version == TABLE.version
    assert {d.reason for d in deferrals} >= {"state_hours", "frequency_cap"}
    # Holidays and Sundays were skipped over by the next allowed times: the days on which
    # each state's contacts were called.
    days: dict[str, set[str]] = defaultdict(set)
    for call in calls:
        c = contacts[str(call.contact_id)]
        if c.state in ("UT", "RI") and call.started_at:
            local = call.started_at.astimezone(ZoneInfo("America/Denver" if c.state == "UT"
                                                        else "America/New_York"))
            days[c.state].add(local.date().isoformat()[5:])
    # (Calls on both sides of each ban, so the bans were not vacuous; none inside them.)
    assert days["UT"] & {"07-01", "07-02"} and days["UT"] & {"07-06", "07-07"}, days["UT"]
    assert not {"07-03", "07-04", "07-05"} & days["UT"], days["UT"]
    assert days["RI"] & {"07-01", "07-02", "07-03"} and "07-07" in days["RI"], days["RI"]
    assert not {"07-04", "07-05", "07-06"} & days["RI"], days["RI"]
    for e in waiting:
        assert e.reason, e.id
    placed = {d.call_id for d in decisions if d.outcome == "allow"}
    assert {c.id for c in calls} <= placed
