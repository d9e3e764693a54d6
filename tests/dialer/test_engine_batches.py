"""The dialer's set-based passes (docs/decisions/0011): slots for a whole batch in one
conditional UPDATE, statements per pass independent of the batch size, batched lease
reconciliation, the staged call timeline and the batched DNC inserts."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, func, select, update
from sqlalchemy.engine import make_url

from callfleet import ids
from callfleet.app import build_dialer
from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call, CallEvent
from callfleet.calls.timeline import add_event
from callfleet.campaigns import service as campaigns
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.carriers.base import CarrierRejected
from callfleet.carriers.sim.models import SimCall
from callfleet.clock import FixedClock
from callfleet.compliance.models import DncEntry
from callfleet.compliance.service import add_many_to_dnc
from callfleet.crm.models import Company, Contact
from callfleet.db.migrate import migrate
from callfleet.db.session import Database, open_database
from callfleet.dialer.engine import Dialer
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal
from callfleet.teams.service import create_team
from callfleet.webhooks.outbox import OutboxEvent
from tests.campaigns.helpers import fresh_monday, setup_campaign, us_phone
from tests.conftest import PG_URL, DbHandle, TeamCtx, _admin, asyncpg_url, make_settings

_next = iter(range(100_000))


def _phones(n: int) -> list[str]:
    base = 8000 + 40 * next(_next)
    return [us_phone(base + i, area=305) for i in range(n)]


async def _campaign_with(app: Any, client: httpx.AsyncClient, database: DbHandle,
                         t: TeamCtx, phones: list[str], behaviours: list[str] | None = None,
                         **campaign: Any) -> str:
    for i, phone in enumerate(phones):
        b = behaviours[i % len(behaviours)] if behaviours else "answer"
        await app.state.carrier.set_profile(phone, [b], persona="interested", ring_seconds=5)
    cid, _ = await setup_campaign(
        client, database, t,
        [{"firstName": f"P{i}", "lastName": "X", "phone": p} for i, p in enumerate(phones)],
        **campaign)
    async with database.db.session() as s:
        await s.execute(update(Campaign).where(Campaign.id == cid).values(status="running"))
        await s.commit()
    return cid


async def _active(db: Database, cid: str, team_id: str) -> tuple[int, int, int]:
    async with db.session(write=False) as s:
        campaign = int(await s.scalar(select(Campaign.active_calls).where(Campaign.id == cid)))
        team = int(await s.scalar(select(Team.active_calls).where(Team.id == team_id)))
        live = int(await s.scalar(select(func.count()).select_from(Call).where(
            Call.campaign_id == cid, Call.status != "ended")) or 0)
    return campaign, team, live


@contextlib.contextmanager
def counting(db: Database) -> Iterator[list[str]]:
    """Statements sent by the app's engines while the block runs."""
    seen: list[str] = []

    def on(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())
        import os
        if os.environ.get("DBG"): print("STMT", statement[:90].replace("\n", " "))

    engines = {id(e.sync_engine): e.sync_engine for e in (db.write_engine, db.read_engine)}
    for e in engines.values():
        event.listen(e, "before_cursor_execute", on)
    try:
        yield seen
    finally:
        for e in engines.values():
            event.remove(e, "before_cursor_execute", on)


def _writes(statements: list[str]) -> int:
    return sum(1 for s in statements if s in ("INSERT", "UPDATE", "DELETE"))


async def test_a_batch_takes_its_slots_at_once_and_never_more_than_the_limits(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    r = await client.patch("/api/team", json={"settings": {"maxConcurrentCalls": 4}},
                           headers=team.headers)
    assert r.status_code == 200
    fresh_monday(app)
    cid = await _campaign_with(app, client, database, team, _phones(12), maxConcurrentCalls=6)
    await app.state.dialer.tick()
    assert await _active(database.db, cid, team.id) == (4, 4, 4)  # the team cap binds
    await client.patch("/api/team", json={"settings": {"maxConcurrentCalls": 100}},
                       headers=team.headers)
    await app.state.dialer.tick()
    assert await _active(database.db, cid, team.id) == (6, 6, 6)  # now the campaign's
    await app.state.dialer.tick()
    assert await _active(database.db, cid, team.id) == (6, 6, 6)


async def test_partial_grants_when_another_worker_took_slots(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app)
    cid = await _campaign_with(app, client, database, team, _phones(1), maxConcurrentCalls=5)
    dialer = app.state.dialer
    async with database.db.session() as s:
        c = await s.get(Campaign, cid)
        assert c is not None
        # Another worker holds 3 of the campaign's 5 slots (not seen by this snapshot).
        await s.execute(update(Campaign).where(Campaign.id == cid).values(active_calls=3))
        assert await dialer._take_slots(s, c, 100, 4) == 2
        assert await dialer._take_slots(s, c, 100, 1) == 0
        await s.execute(update(Campaign).where(Campaign.id == cid).values(active_calls=0))
        await s.execute(update(Team).where(Team.id == team.id).values(active_calls=8))
        # The team has 2 of 10 left: the campaign keeps only what the team grants.
        assert await dialer._take_slots(s, c, 10, 4) == 2
        assert await s.scalar(select(Campaign.active_calls).where(Campaign.id == cid)) == 2
        assert await s.scalar(select(Team.active_calls).where(Team.id == team.id)) == 10
        await s.rollback()


@contextlib.asynccontextmanager
async def _own_database(database: DbHandle, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database of the same backend, so that no other test's campaign or call takes
    part in the passes counted here."""
    if database.backend == "sqlite":
        tmp_path.mkdir(parents=True, exist_ok=True)
        db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
        try:
            await migrate(db)
            yield db
        finally:
            await db.dispose()
        return
    assert PG_URL
    name = f"callfleet_test_own_{uuid.uuid4().hex[:8]}"
    await _admin(PG_URL, f'CREATE DATABASE "{name}"')
    db = open_database(make_url(asyncpg_url(PG_URL)).set(database=name)
                       .render_as_string(hide_password=False), pool_size=3)
    try:
        await migrate(db)
        yield db
    finally:
        await db.dispose()
        await _admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _seed(db: Database, dialer: Dialer, n: int, now: datetime,
                behaviours: tuple[str, ...] = ("answer",)) -> str:
    """A running campaign of ``n`` due contacts whose calls (``behaviours`` in turn) ring for
    5 s."""
    async with db.session() as s:
        team, _ = await create_team(s, f"Own {uuid.uuid4().hex[:6]}")
        company = Company(id=ids.new_id("comp"), team_id=team.id, name="Own",
                          name_lower="own", custom_fields={}, created_at=now, updated_at=now)
        assistant = Assistant(id=ids.new_id("asst"), team_id=team.id, name="A",
                              first_message="Hi {{contact.first_name}}", end_call={},
                              call_transfer={}, info_extraction={}, outbound_enabled=True,
                              voicemail_action="hangup", created_at=now, updated_at=now)
        number = PhoneNumber(id=ids.new_id("pn"), team_id=team.id, assistant_id=assistant.id,
                             phone_number="+13055550100", provider="sim", status="active",
                             capabilities=["voice"], created_at=now, updated_at=now)
        s.add_all([company, assistant, number])
        await s.flush()
        created = await campaigns.create_campaign(s, Principal(team.id, team.slug, "t"), {
            "assistant_id": assistant.id, "company_id": company.id,
            "from_number_ids": [number.id], "name": "own", "call_window_start": "00:00",
            "call_window_end": "23:59", "call_window_timezone": "America/New_York",
            "max_concurrent_calls": 50, "max_attempts_per_contact": 1}, now)
        for i in range(n):
            contact = Contact(id=ids.new_id("cont"), team_id=team.id, company_id=company.id,
                              first_name=f"P{i}", last_name="X",
                              phone=us_phone(9000 + i, area=305), timezone="America/New_York",
                              lead_status="new", custom_fields={}, tags=[], search_text="",
                              created_at=now, updated_at=now)
            s.add(contact)
            await s.flush()
            s.add(Enrollment(id=ids.new_id("cc"), team_id=team.id, campaign_id=created["id"],
                             contact_id=contact.id, status="pending", priority=0, attempts=0,
                             outcome_counts={}, answered=False, created_at=now,
                             updated_at=now))
        await s.execute(update(Campaign).where(Campaign.id == created["id"])
                        .values(status="running", started_at=now))
        await s.commit()
    for i in range(n):
        await dialer.carrier.set_profile(us_phone(9000 + i, area=305),
                                         [behaviours[i % len(behaviours)]],
                                         persona="interested", ring_seconds=5)
    return str(created["id"])


async def _statements_for(database: DbHandle, tmp_path: Path, n: int) -> tuple[int, ...]:
    """Write statements of the pass that claims ``n`` calls, of the pass that delivers
    their ringing and answer, and of the pass that ends them."""
    clock = FixedClock(datetime(2030, 3, 4, 15, 0, tzinfo=UTC))  # a Monday, 10:00 in NY
    async with _own_database(database, tmp_path / str(n)) as db:
        dialer = await build_dialer(make_settings(db.url), db, clock)
        cid = await _seed(db, dialer, n, clock.now())
        with counting(db) as claim:
            await dialer.tick()
        clock.advance(seconds=10)
        with counting(db) as answer:
            await dialer.tick()
        clock.advance(minutes=20)
        with counting(db) as end:
            await dialer.tick()
        async with db.session(write=False) as s:
            outcomes = list(await s.scalars(select(Call.outcome)
                                            .where(Call.campaign_id == cid)))
            status = await s.scalar(select(Campaign.status).where(Campaign.id == cid))
    assert outcomes == ["answered"] * n and status == "completed"
    return _writes(claim), _writes(answer), _writes(end)


async def test_statements_per_pass_do_not_grow_with_the_batch(
        database: DbHandle, tmp_path: Path) -> None:
    small = await _statements_for(database, tmp_path, 2)
    large = await _statements_for(database, tmp_path, 40)
    assert small == large, (small, large)
    assert max(large) <= 15, large


async def test_reconcile_renews_live_calls_and_ends_the_others_in_one_batch(
        database: DbHandle, tmp_path: Path) -> None:
    clock = FixedClock(datetime(2030, 3, 4, 15, 0, tzinfo=UTC))
    async with _own_database(database, tmp_path) as db:
        dialer = await build_dialer(make_settings(db.url), db, clock)
        carrier = dialer.carrier
        cid = await _seed(db, dialer, 3, clock.now(), ("answer", "busy", "answer"))
        phones = [us_phone(9000 + i, area=305) for i in range(3)]
        placements = await dialer.claim(clock.now())
        assert len(placements) == 3
        by_phone = {p.to_number: p for p in placements}
        never = by_phone[phones[2]]  # the worker "dies" before dialing this one
        await dialer.place([by_phone[phones[0]], by_phone[phones[1]]])

        async def lost(_events: list[Any]) -> None:  # the network's events never arrive
            return None

        clock.advance(seconds=3)
        await carrier.pump(lost)  # the busy call has ended at the carrier
        clock.advance(seconds=60)  # every lease (30 s) has expired
        with counting(db) as seen:
            assert await dialer.reconcile(clock.now()) == 3
        async with db.session(write=False) as s:
            calls = {c.to_number: c for c in await s.scalars(
                select(Call).where(Call.campaign_id == cid))}
            team_id = await s.scalar(select(Campaign.team_id).where(Campaign.id == cid))
        live, busy, dead = (calls[p] for p in phones)
        assert live.status != "ended" and live.lease_owner == dialer.worker_id
        assert live.lease_expires_at is not None and live.lease_expires_at > clock.now()
        assert live.carrier_call_id is not None
        assert (busy.status, busy.outcome, busy.ended_reason) == (
            "ended", "busy", "carrier_busy")
        assert (dead.status, dead.outcome, dead.ended_reason) == (
            "ended", "failed", "dial_not_confirmed")
        assert await _active(db, cid, str(team_id)) == (1, 1, 1)
        # One lease renewal, one fence, the endings' updates and inserts: a few statements
        # for the batch, not a few per call.
        assert _writes(seen) <= 12, seen
        # The network fenced the attempt that never reached it: a late dial is refused.
        late = await carrier.place_calls([(never.call_id, never.from_number,
                                           never.to_number)])
        assert isinstance(late[0], CarrierRejected)
        # Nothing is expired any more: a second pass has nothing to do.
        assert await dialer.reconcile(clock.now()) == 0
        async with db.session(write=False) as s:
            assert await s.scalar(select(func.count()).select_from(SimCall).where(
                SimCall.call_ref == never.call_id)) == 1


async def test_call_events_are_written_with_the_transaction_and_dropped_with_its_rollback(
        database: DbHandle, team: TeamCtx) -> None:
    from callfleet.db.base import utcnow

    now = utcnow()
    call = Call(id=ids.new_id("call"), team_id=team.id, direction="outbound",
                from_number="+12125550100", to_number="+12125550111", status="dialing",
                attempt=1, started_at=now, carrier="sim", messages=[], analysis={},
                call_metadata={}, created_at=now, updated_at=now)
    async with database.db.session() as s:
        s.add(call)
        add_event(s, call, "call.initiated", now, {"attempt": 1})
        add_event(s, call, "call.ringing", now)
        await s.commit()
    async with database.db.session() as s:
        add_event(s, call, "call.answered", now)
        await s.flush()  # written, but the transaction is rolled back
        await s.rollback()
        add_event(s, call, "call.hangup", now)
        await s.rollback()  # staged, never flushed
    async with database.db.session(write=False) as s:
        kinds = list(await s.scalars(select(CallEvent.type).where(CallEvent.call_id == call.id)
                                     .order_by(CallEvent.id)))
        outbox = list(await s.scalars(select(OutboxEvent.type).where(
            OutboxEvent.subject_id == call.id).order_by(OutboxEvent.id)))
    assert kinds == ["call.initiated", "call.ringing"]
    assert outbox == ["call.initiated", "call.ringing"]


async def test_dnc_entries_of_a_batch_are_one_statement_and_never_duplicated(
        database: DbHandle, team: TeamCtx) -> None:
    from callfleet.db.base import utcnow

    now = utcnow()
    a, b = "+13055550170", "+13055550171"
    async with database.db.session() as s:
        await add_many_to_dnc(s, [(team.id, a, "first", "call", now)])
        await s.commit()
    async with database.db.session() as s:
        with counting(database.db) as seen:
            await add_many_to_dnc(s, [(team.id, a, "again", "call", now),
                                      (team.id, b, "opted out", "call", now),
                                      (team.id, b, "twice", "call", now)])
        await s.commit()
    assert _writes(seen) == 1
    async with database.db.session(write=False) as s:
        rows = {r.phone_number: r.reason for r in await s.scalars(
            select(DncEntry).where(DncEntry.team_id == team.id,
                                   DncEntry.phone_number.in_([a, b])))}
    assert rows == {a: "first", b: "opted out"}


async def test_the_claim_index_exists(database: DbHandle) -> None:
    from sqlalchemy import inspect

    async with database.db.write_engine.connect() as conn:
        names = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes(
            "campaign_contacts")})
    assert "ix_campaign_contacts_claim" in names


async def test_enrollments_claimed_once_per_attempt(database: DbHandle,
                                                   tmp_path: Path) -> None:
    clock = FixedClock(datetime(2030, 3, 4, 15, 0, tzinfo=UTC))
    async with _own_database(database, tmp_path) as db:
        dialer = await build_dialer(make_settings(db.url), db, clock)
        cid = await _seed(db, dialer, 8, clock.now())
        first = await dialer.claim(clock.now())
        again = await dialer.claim(clock.now() + timedelta(seconds=1))
        assert len(first) == 8 and again == []
        async with db.session(write=False) as s:
            rows = list(await s.execute(select(Enrollment.status, Enrollment.attempts,
                                               Enrollment.last_call_id)
                                        .where(Enrollment.campaign_id == cid)))
            calls = list(await s.execute(select(Call.enrollment_id, Call.attempt)
                                         .where(Call.campaign_id == cid)))
        assert {(r.status, r.attempts) for r in rows} == {("calling", 1)}
        assert {r.last_call_id for r in rows} == {p.call_id for p in first}
        assert sorted(calls) == sorted((p.enrollment_id, 1) for p in first)
