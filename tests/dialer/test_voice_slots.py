"""Voice slots (docs/decisions/0040): the dialer reserves a slot on a live voice process in
the transaction that moves the enrollment to ``calling``, never places a live voice call
without one (the contact stays due), gives it back when the call ends, forgets a process
whose lease expired; text-simulated calls never touch the table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, event, func, select

from callfleet.calls import slots
from callfleet.calls.models import Call
from callfleet.calls.slots import VoiceProcess
from callfleet.campaigns.models import Enrollment
from callfleet.dialer.outcomes import finish_call
from tests.campaigns.helpers import fresh_monday
from tests.conftest import DbHandle, TeamCtx
from tests.dialer.test_engine_batches import _campaign_with, _phones


async def _register(app: Any, capacities: dict[str, int]) -> None:
    db = app.state.db
    now = app.state.clock.now()
    async with db.session() as s:
        await s.execute(delete(VoiceProcess))
        for pid, cap in capacities.items():
            await slots.heartbeat(s, pid, host="test", capacity=cap, draining=False, now=now)
        await s.commit()


async def _reserved(app: Any) -> dict[str, int]:
    async with app.state.db.session(write=False) as s:
        return dict(list(await s.execute(select(VoiceProcess.id, VoiceProcess.reserved))))


async def _calls(app: Any, cid: str) -> list[Call]:
    async with app.state.db.session(write=False) as s:
        return list(await s.scalars(select(Call).where(Call.campaign_id == cid)))


async def _pending(app: Any, cid: str) -> int:
    async with app.state.db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(Enrollment).where(
            Enrollment.campaign_id == cid, Enrollment.status == "pending")) or 0)


async def _dial(app: Any, cid: str) -> None:
    """One dialer pass over this campaign only (the shared database holds other tests'
    running campaigns)."""
    dialer = app.state.dialer
    await dialer.place(await dialer.claim_campaign(cid, app.state.clock.now(), 100))


def _live_voice(app: Any, on: bool) -> None:
    dialer = app.state.dialer
    dialer.settings = dialer.settings.model_copy(update={"sim_audio": on, "voice_slots": on})


async def test_the_dialer_places_only_the_calls_a_voice_process_can_talk_on(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app)
    _live_voice(app, True)
    try:
        cid = await _campaign_with(app, client, database, team, _phones(5),
                                   maxConcurrentCalls=10)
        # Two voice processes' worth of capacity: 2 + 1 slots.
        await _register(app, {"voice-a": 2, "voice-b": 1})
        await _dial(app, cid)
        calls = await _calls(app, cid)
        assert len(calls) == 3
        assert sorted(c.voice_process_id for c in calls) == ["voice-a", "voice-a", "voice-b"]
        assert await _reserved(app) == {"voice-a": 2, "voice-b": 1}
        assert await _pending(app, cid) == 2  # no slot: not dialled, still due
        await _dial(app, cid)
        assert len(await _calls(app, cid)) == 3  # full: still nothing more
        # A call ends: its slot is given back, and the next due contact gets it.
        async with app.state.db.session() as s:
            call = await s.get(Call, next(c.id for c in calls if c.voice_process_id == "voice-b"))
            assert call is not None
            await finish_call(s, call, "answered", "customer_ended_call", app.state.clock.now())
            await s.commit()
        assert await _reserved(app) == {"voice-a": 2, "voice-b": 0}
        await _dial(app, cid)
        calls = await _calls(app, cid)
        assert len(calls) == 4 and await _reserved(app) == {"voice-a": 2, "voice-b": 1}
        # Every process's lease expires (they died): nothing is offered any more.
        app.state.clock.at += timedelta(seconds=slots.LEASE_SECONDS + 1)
        await _dial(app, cid)
        assert len(await _calls(app, cid)) == 4 and await _pending(app, cid) == 1
        # A new process registers (its heartbeat sweeps the dead ones): the last call goes.
        async with app.state.db.session() as s:
            await slots.heartbeat(s, "voice-c", host="test", capacity=4, draining=False,
                                  now=app.state.clock.now())
            await s.commit()
        assert set(await _reserved(app)) == {"voice-c"}
        await _dial(app, cid)
        assert len(await _calls(app, cid)) == 5 and await _reserved(app) == {"voice-c": 1}
    finally:
        _live_voice(app, False)


async def test_a_draining_process_gets_no_new_call(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app)
    _live_voice(app, True)
    try:
        cid = await _campaign_with(app, client, database, team, _phones(2),
                                   maxConcurrentCalls=10)
        await _register(app, {"voice-a": 4})
        async with app.state.db.session() as s:
            await slots.heartbeat(s, "voice-a", host="test", capacity=4, draining=True,
                                  now=app.state.clock.now())
            await s.commit()
        await _dial(app, cid)
        assert await _calls(app, cid) == [] and await _pending(app, cid) == 2
    finally:
        _live_voice(app, False)


async def test_text_simulated_calls_never_touch_the_voice_slots(
        app: Any, client: httpx.AsyncClient, database: DbHandle, team: TeamCtx) -> None:
    fresh_monday(app)
    cid = await _campaign_with(app, client, database, team, _phones(3), maxConcurrentCalls=10)
    await _register(app, {})  # no voice process at all: text calls go anyway
    seen: list[str] = []
    db = app.state.db

    def on(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engines = {id(e.sync_engine): e.sync_engine for e in (db.write_engine, db.read_engine)}
    for e in engines.values():
        event.listen(e, "before_cursor_execute", on)
    try:
        await _dial(app, cid)
    finally:
        for e in engines.values():
            event.remove(e, "before_cursor_execute", on)
    calls = await _calls(app, cid)
    assert len(calls) == 3 and all(c.voice_process_id is None for c in calls)
    assert not [s for s in seen if "voice_processes" in s]
