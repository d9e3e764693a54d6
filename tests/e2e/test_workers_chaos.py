"""Four `callfleet worker` processes run a 2,000-contact campaign on PostgreSQL while the
test SIGKILLs and restarts them at random; afterwards every dialer guarantee is checked
against the calls table and against the simulated carrier's own records."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from callfleet import ids
from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.campaigns import enrollments, lifecycle
from callfleet.campaigns import service as campaigns
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.campaigns.policy import call_window, legal_hours
from callfleet.carriers.sim.models import SimCall
from callfleet.clock import shared_clock
from callfleet.crm import fields as F
from callfleet.crm.models import Company, Contact
from callfleet.db.base import utcnow
from callfleet.db.migrate import migrate
from callfleet.db.session import open_database
from callfleet.dialer import rules
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.principal import Principal
from callfleet.teams.service import create_team
from tests.conftest import PG_URL, _admin, asyncpg_url

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs CALLFLEET_TEST_POSTGRES_URL")

SCALE = 1500.0
CONTACTS = 2000
MAX_CONCURRENT = 40
AREAS = {"212": "America/New_York", "312": "America/Chicago", "303": "America/Denver",
         "415": "America/Los_Angeles"}


async def _seed(url: str) -> tuple[str, str, set[str]]:
    db = open_database(url, pool_size=5)
    await migrate(db)
    clock = await shared_clock(db, SCALE)
    rng = random.Random(42)
    dnc_phones: set[str] = set()
    async with db.session() as s:
        team, _ = await create_team(s, "Chaos")
        p = Principal(team.id, team.slug, "test")
        company = Company(id=ids.new_id("comp"), team_id=team.id, name="Chaos Inc",
                          name_lower="chaos inc", custom_fields={}, created_at=utcnow(),
                          updated_at=utcnow())
        s.add(company)
        assistant = Assistant(id=ids.new_id("asst"), team_id=team.id, name="A",
                              first_message="Hi {{contact.first_name}}", end_call={},
                              call_transfer={}, info_extraction={}, outbound_enabled=True,
                              voicemail_action="hangup", created_at=utcnow(),
                              updated_at=utcnow())
        s.add(assistant)
        await s.flush()
        numbers = []
        for k in range(3):
            pn = PhoneNumber(id=ids.new_id("pn"), team_id=team.id, assistant_id=assistant.id,
                             phone_number=f"+1212555010{k}", provider="sim", status="active",
                             capabilities=["voice"], created_at=utcnow(), updated_at=utcnow())
            s.add(pn)
            numbers.append(pn.id)
        rows = []
        for i in range(CONTACTS):
            area = list(AREAS)[i % len(AREAS)]
            phone = None if i % 37 == 5 else f"+1{area}{2000000 + i:07d}"
            dnc = i % 23 == 3
            if dnc and phone:
                dnc_phones.add(phone)
            rows.append(Contact(
                id=ids.new_id("cont"), team_id=team.id, company_id=company.id,
                first_name=f"C{i}", last_name="X", phone=phone, do_not_call=dnc,
                timezone=AREAS[area] if i % 3 == 0 else None, lead_status="new",
                custom_fields={}, tags=[], email_lower=None,
                search_text=F.search_text(f"C{i}", "X", None, phone, None),
                created_at=utcnow(), updated_at=utcnow()))
        s.add_all(rows)
        await s.flush()
        now = clock.now()
        created = await campaigns.create_campaign(s, p, {
            "assistant_id": assistant.id, "company_id": company.id,
            "from_number_ids": numbers, "name": "chaos", "call_window_start": "08:30",
            "call_window_end": "19:30", "call_window_timezone": "America/New_York",
            "max_concurrent_calls": MAX_CONCURRENT, "max_attempts_per_contact": 3,
            "retry_delay_minutes": 45,
        }, now)
        await campaigns.add_contacts(s, p, created["id"], [c.id for c in rows], None)
        c = await s.get(Campaign, created["id"])
        assert c is not None
        await enrollments.skip_uncallable(s, c, dry_run=False)
        await lifecycle.transition(s, c, "running", now)
        await s.commit()
        _ = rng
    await db.dispose()
    return team.id, created["id"], dnc_phones


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "callfleet.cli", "worker"], env=env,
        stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )


async def _status(url: str, campaign_id: str) -> str:
    db = open_database(url, null_pool=True)
    try:
        async with db.session(write=False) as s:
            c = await s.get(Campaign, campaign_id)
            assert c is not None
            return c.status
    finally:
        await db.dispose()


async def test_workers_survive_sigkill(tmp_path: Path) -> None:
    assert PG_URL
    name = f"callfleet_chaos_{uuid.uuid4().hex[:8]}"
    await _admin(PG_URL, f'CREATE DATABASE "{name}"')
    url = make_url(asyncpg_url(PG_URL)).set(database=name).render_as_string(
        hide_password=False)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _team_id, campaign_id, dnc_phones = await _seed(url)
        env = {**os.environ, "CALLFLEET_DATABASE_URL": url, "CALLFLEET_TIME_SCALE": str(SCALE),
               "CALLFLEET_DIALER_TICK_SECONDS": "0.05", "CALLFLEET_LEASE_SECONDS": "2",
               "CALLFLEET_LOG_LEVEL": "WARNING"}
        log = tmp_path / "workers.log"
        procs = [_start_worker(env, log) for _ in range(4)]
        rng = random.Random(7)
        kills = 0
        deadline = time.monotonic() + 480
        status = "running"
        next_kill = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            status = await _status(url, campaign_id)
            if status == "completed":
                break
            if time.monotonic() >= next_kill and kills < 25:
                victim = rng.randrange(len(procs))
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                kills += 1
                procs[victim] = _start_worker(env, log)
                next_kill = time.monotonic() + rng.uniform(1.0, 2.5)
            await asyncio.sleep(0.2)
        assert status == "completed", f"campaign still {status}; see {log}"
        assert kills >= 5
        await _verify(url, campaign_id, dnc_phones)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        await _admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _verify(url: str, campaign_id: str, dnc_phones: set[str]) -> None:
    db = open_database(url, null_pool=True)
    try:
        async with db.session(write=False) as s:
            campaign = await s.get(Campaign, campaign_id)
            assert campaign is not None
            enrollments = list(await s.scalars(
                select(Enrollment).where(Enrollment.campaign_id == campaign_id)))
            calls = list(await s.scalars(select(Call).where(Call.campaign_id == campaign_id)))
            sims = list(await s.scalars(select(SimCall).where(SimCall.behaviour != "fenced")))
            contacts = {c.id: c for c in await s.scalars(select(Contact))}
            count = (await campaigns.counters(s, [campaign_id]))[campaign_id]
    finally:
        await db.dispose()
    # every enrollment terminal, attempts within the cap
    assert all(e.status in ("completed", "failed", "skipped") for e in enrollments)
    assert all(e.attempts <= 3 for e in enrollments)
    assert all(c.status == "ended" for c in calls)
    assert campaign.active_calls == 0
    # never dialed twice for one attempt: one call row per (enrollment, attempt), and the
    # network saw at most one dial per call row
    keys = [(c.enrollment_id, c.attempt) for c in calls]
    assert len(keys) == len(set(keys))
    refs = [x.call_ref for x in sims]
    assert len(refs) == len(set(refs))
    call_ids = {c.id for c in calls}
    ours = [x for x in sims if x.call_ref in call_ids]
    # never two calls at once for one contact, and concurrency never above the limit, as
    # observed by the carrier
    by_number: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    points = []
    for x in ours:
        end = x.ended_at or x.created_at
        by_number[x.to_number].append((x.created_at, end))
        points += [(x.created_at, 1), (end, -1)]
    for spans in by_number.values():
        spans.sort()
        for (_, end1), (start2, _) in pairwise(spans):
            assert start2 >= end1
    level = peak = 0
    for _, d in sorted(points, key=lambda p: (p[0], p[1])):
        level += d
        peak = max(peak, level)
    assert 0 < peak <= MAX_CONCURRENT
    # no call for a do-not-call contact, none outside its window or legal hours
    legal = legal_hours(None, "08:00", "21:00")
    opted_out = {c.contact_id: c.ended_at for c in calls if c.outcome == "opted_out"}
    assert opted_out  # the simulated personas include people who ask to be removed
    for c in calls:
        contact = contacts[c.contact_id]
        # seeded do-not-call contacts are never dialed; one who opts out is not dialed again
        assert c.to_number not in dnc_phones
        if c.contact_id in opted_out:
            assert contact.do_not_call and contact.lead_status == "do_not_contact"
            assert c.started_at <= opted_out[c.contact_id]
        tz, _ = rules.effective_timezone(contact_tz=contact.timezone, phone=contact.phone,
                                         campaign_tz=campaign.call_window_timezone,
                                         use_contact_timezone=True)
        assert rules.window_contains(call_window(campaign, tz), c.started_at), c.id
        assert rules.legal_contains(legal, tz, c.started_at)
    # counters equal a recount from the call records
    called = {c.enrollment_id for c in calls}
    answered = {c.enrollment_id for c in calls if c.outcome == "answered"}
    assert count["contacts_called"] == len(called)
    assert count["contacts_answered"] == len(answered)
    assert count["total_contacts"] == CONTACTS
    assert count["contacts_completed"] == sum(
        1 for e in enrollments if e.status in ("completed", "failed"))
    assert timedelta(0) <= max(c.ended_at - c.started_at for c in calls)  # type: ignore[operator]
