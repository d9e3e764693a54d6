"""Waking the background loops (callfleet/wakeup.py): a commit that created work wakes the
loops of its topic (a rollback does not), in this process and, on PostgreSQL, in others
through LISTEN/NOTIFY; the idle back-off and its bounds; the writes that create work."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from callfleet import wakeup
from callfleet.calls.models import Call
from callfleet.carriers.sim.carrier import SimCarrier
from callfleet.clock import FixedClock
from callfleet.conversation import jobs
from callfleet.teams.service import create_team
from callfleet.wakeup import IdleWait, listening, notify
from tests.campaigns.helpers import fresh_monday, setup_campaign
from tests.conftest import DbHandle, TeamCtx, make_contact


def waiters(database: DbHandle) -> dict[str, IdleWait]:
    return {t: IdleWait(database.db, t, base=30, cap=30) for t in sorted(wakeup.TOPICS)}


def close(ws: dict[str, IdleWait]) -> None:
    for w in ws.values():
        w.close()


def woken(ws: dict[str, IdleWait]) -> set[str]:
    return {t for t, w in ws.items() if w.arm()}


async def test_a_commit_wakes_its_topics_and_a_rollback_does_not(database: DbHandle) -> None:
    ws = waiters(database)
    try:
        async with database.db.session() as s:
            notify(s, "analysis")
            await s.rollback()
        async with database.db.session() as s:
            notify(s, "dialer")  # closed without a commit
        assert woken(ws) == set()
        async with database.db.session() as s:
            notify(s, "analysis")
            notify(s, "webhooks", "analysis")
            await s.execute(text("SELECT 1"))
            assert woken(ws) == set()  # not before the commit
            await s.commit()
        assert woken(ws) == {"analysis", "webhooks"}
        # A waiting loop returns at once when woken, not after its 30 s.
        stop = asyncio.Event()
        task = asyncio.create_task(ws["dialer"].idle(stop))
        await asyncio.sleep(0)
        async with database.db.session() as s:
            notify(s, "dialer")
            await s.commit()
        await asyncio.wait_for(task, 5)
    finally:
        close(ws)


def test_idle_waits_grow_to_the_cap_and_end_at_the_due_time(database: DbHandle) -> None:
    w = IdleWait(database.db, "dialer", base=0.2, cap=5.0)
    reliable = database.backend == "sqlite"  # PostgreSQL: only with a LISTEN connection
    try:
        grown = [w.next_delay() for _ in range(7)]
        assert grown == ([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0] if reliable else [0.2] * 7)
        assert w.next_delay(due_in=0.05) == 0.05  # the next known work comes first
        assert w.next_delay(due_in=0.0) == 0.2  # due but not taken: poll at the tick
        assert w.next_delay(due_in=100.0) == (5.0 if reliable else 0.2)
        w.busy()
        assert w.next_delay() == 0.2
        with pytest.raises(ValueError):
            IdleWait(database.db, "nobody", base=1, cap=1)
    finally:
        w.close()


async def test_writes_that_create_work_wake_their_loops(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    fresh_monday(app)  # 15:00 UTC: New York's calling hours
    ws = waiters(database)
    try:
        cid, contacts = await setup_campaign(client, database, team, [
            {"phone": "+12125550101", "timezone": "America/New_York"}])
        assert "dialer" in woken(ws)  # created, contacts enrolled
        company = (await client.get(f"/api/crm/campaigns/{cid}", headers=team.headers)
                   ).json()["campaign"]["company_id"]
        r = await client.post(f"/api/crm/campaigns/{cid}/run", json={}, headers=team.headers)
        assert r.status_code == 200, r.text
        [call] = r.json()["calls"]
        # started (dialer), its first call placed on the simulated network (dialer), and
        # campaign.started / call.initiated written (webhooks)
        assert woken(ws) >= {"dialer", "webhooks"}
        other = await make_contact(client, team, company, phone="+12125550102")
        assert woken(ws) == set()  # a contact alone creates no work (no webhook endpoint)
        r = await client.post(f"/api/crm/campaigns/{cid}/contacts",
                              json={"contactIds": [other["id"]]}, headers=team.headers)
        assert r.status_code == 200 and "dialer" in woken(ws)
        r = await client.post(f"/api/crm/campaigns/{cid}/pause", json={},
                              headers=team.headers)
        assert r.status_code == 200 and woken(ws) >= {"dialer", "webhooks"}
        r = await client.post("/api/webhooks", json={"url": "https://hooks.example.test/w"},
                              headers=team.headers)
        hook = r.json()["webhook"]["id"]
        woken(ws)
        r = await client.post(f"/api/webhooks/{hook}/test", headers=team.headers)
        assert r.status_code in (200, 201) and woken(ws) == {"webhooks"}
        r = await client.patch(f"/api/crm/contacts/{contacts[0]}", json={"jobTitle": "CTO"},
                               headers=team.headers)
        assert r.status_code == 200 and woken(ws) == {"webhooks"}  # contact.updated
        for kind in ("conversation", "analysis"):
            async with database.db.session() as s:
                jobs.add_job(s, call["id"], team.id, kind, app.state.clock.now())
                await s.commit()
            assert woken(ws) == {kind}
        carrier = SimCarrier(database.db, FixedClock(app.state.clock.now()),
                             mix="answer=100", invalid_percent=0)
        [sim_id] = await carrier.place_calls([("call_wsim", "+16462000001", "+12125550103")])
        assert woken(ws) == {"dialer"}  # the network has events to deliver
        await carrier.hangup(str(sim_id), 5.0)
        assert woken(ws) == {"dialer"}  # a call's end moved
    finally:
        close(ws)


def needs_postgres(database: DbHandle) -> None:
    if database.backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")


OTHER_PROCESS = """
import asyncio, sys
from callfleet.db.session import open_database
from callfleet.wakeup import notify

async def main() -> None:
    db = open_database(sys.argv[1], null_pool=True)
    async with db.session() as s:
        notify(s, "webhooks")
        await s.commit()
    await db.dispose()

asyncio.run(main())
"""


async def raw_pg(database: DbHandle) -> asyncpg.Connection:
    u = make_url(database.url)
    return await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username,
                                 password=u.password, database=u.database)


async def until(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):  # a bounded poll
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not reached in time")


async def test_another_processs_commit_wakes_this_process(database: DbHandle) -> None:
    needs_postgres(database)
    hub = wakeup.hub(database.db)
    w = IdleWait(database.db, "webhooks", base=30, cap=30)
    try:
        async with listening(database.db):
            await until(lambda: hub.listeners == 1)
            assert w.reliable  # the loops may back off now
            w.arm()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLEET_")}
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", OTHER_PROCESS,
                                                        database.url, env=env)
            assert await asyncio.wait_for(proc.wait(), 60) == 0
            await until(lambda: w.woken.is_set())
        assert hub.listeners == 0 and not w.reliable
    finally:
        w.close()


async def test_a_lost_listen_connection_is_replaced(database: DbHandle) -> None:
    needs_postgres(database)
    hub = wakeup.hub(database.db)
    w = IdleWait(database.db, "analysis", base=30, cap=30)
    conn = await raw_pg(database)
    try:
        async with listening(database.db):
            await until(lambda: hub.listeners == 1)
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query ILIKE 'LISTEN%'")
            assert killed == 1
            await until(lambda: hub.listeners == 0)
            assert not w.reliable  # meanwhile the loops poll at their tick
            await until(lambda: hub.listeners == 1)  # reconnected (after 1 s)
            w.arm()
            await conn.execute("SELECT pg_notify($1, $2)", wakeup.CHANNEL, "analysis|elsewhere")
            await until(lambda: w.woken.is_set())
    finally:
        w.close()
        await conn.close()


async def test_job_due_times(own_database: DbHandle) -> None:
    db, clock = own_database.db, FixedClock(datetime.now(UTC))
    now = clock.now()
    assert await jobs.next_due(db, "analysis") is None
    async with db.session() as s:
        t, _ = await create_team(s, "Due")
        for call_id in ("call_a", "call_b"):
            s.add(Call(id=call_id, team_id=t.id, from_number="+1", to_number="+2",
                       messages=[], analysis={}, call_metadata={}))
        await s.flush()
        jobs.add_job(s, "call_a", t.id, "analysis", now + timedelta(seconds=90))
        jobs.add_job(s, "call_b", t.id, "conversation", now + timedelta(seconds=5))
        await s.commit()
    assert await jobs.next_due(db, "analysis") == now + timedelta(seconds=90)
    assert await jobs.due_in(db, "analysis", clock) == 90.0
    await jobs.claim(db, "conversation", "w", now + timedelta(seconds=5),
                     timedelta(seconds=60), 10)
    # running: due again when its lease runs out
    assert await jobs.next_due(db, "conversation") == now + timedelta(seconds=65)
