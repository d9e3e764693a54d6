"""Two sender processes on one PostgreSQL database (``serve`` + ``worker``): a delivery that
waits for an earlier one of its subject is promoted when that one's result is recorded, by
whichever sender records it, in both orders of the race between one sender's fan-out and the
other's result (docs/decisions/0049-successor-promotion-across-senders.md).

The interleavings are forced: one sender is held inside its transaction (a wrapped step that
waits on an event) while the other runs; time is the injected clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from callfleet.clock import FixedClock
from callfleet.outbound import parse_networks
from callfleet.teams.principal import Principal
from callfleet.teams.service import create_team
from callfleet.webhooks import service as webhooks
from callfleet.webhooks.models import WebhookDelivery
from callfleet.webhooks.secrets import SecretBox
from callfleet.webhooks.sender import Result, WebhookSender
from tests.conftest import DbHandle, make_settings
from tests.webhooks.helpers import Receiver, emit_events


async def _setup(db: DbHandle) -> tuple[str, str, SecretBox]:
    box = SecretBox([Fernet.generate_key()])
    async with db.db.session() as s:
        team, _ = await create_team(s, "Two senders")
        wh = await webhooks.create_endpoint(
            s, Principal(team.id, team.slug, "test"),
            {"url": "https://hooks.example.test/two"}, box, parse_networks(""))
        await s.commit()
    return team.id, wh["id"], box


def _sender(db: DbHandle, clock: FixedClock, box: SecretBox, name: str) -> WebhookSender:
    return WebhookSender(db.db, clock, make_settings(db.url), box=box, worker_id=name,
                         transport=httpx.MockTransport(Receiver()), rng=random.Random(1))


async def _states(db: DbHandle, endpoint_id: str) -> list[tuple[int, str]]:
    async with db.db.session(write=False) as s:
        return sorted((d.event_seq, d.status) for d in await s.scalars(
            select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)))


def _held(inner: Callable[..., Awaitable[Any]], entered: asyncio.Event,
          go: asyncio.Event) -> Callable[..., Awaitable[Any]]:
    """``inner``, then wait for ``go`` (still inside the caller's transaction)."""
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        out = await inner(*args, **kwargs)
        entered.set()
        await go.wait()
        return out
    return wrapped


async def _first_delivery_in_flight(db: DbHandle) -> tuple[str, str, datetime, SecretBox,
                                                            WebhookSender, WebhookSender, str]:
    """Event 1 of a call fanned out and claimed by sender B (``sending``); event 2 of the same
    call written, not yet fanned out."""
    if db.backend != "postgres":
        pytest.skip("two sender processes share the work on PostgreSQL")
    team_id, endpoint_id, box = await _setup(db)
    clock = FixedClock(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    a, b = (_sender(db, clock, box, "sender-a"), _sender(db, clock, box, "sender-b"))
    now = clock.now()
    await emit_events(db, team_id, now, ("call.initiated", "call_1", {"n": 1}))
    assert await b.dispatch(now) == 1
    [job] = await b.claim(now, 10)
    await emit_events(db, team_id, now, ("call.completed", "call_1", {"n": 2}))
    return team_id, endpoint_id, now, box, a, b, job.delivery_id


def _ok(delivery_id: str, at: datetime) -> Result:
    return Result(delivery_id, 1, at, 200, None, 1, "ok")


async def test_result_recorded_while_the_other_sender_fans_out_the_successor(
        own_database: DbHandle) -> None:
    """B records event 1's delivery and promotes successors, and is held before its commit;
    meanwhile A fans out event 2. B's promotion cannot see A's row, so A must not leave it
    ``waiting`` behind a delivery whose result is being recorded."""
    _, endpoint_id, now, _, a, b, first = await _first_delivery_in_flight(own_database)
    entered, go = asyncio.Event(), asyncio.Event()
    b._promote = _held(b._promote, entered, go)  # type: ignore[method-assign]
    recording = asyncio.create_task(b.record([_ok(first, now)]))
    try:
        await asyncio.wait_for(entered.wait(), 10)
        assert await asyncio.wait_for(a.dispatch(now), 10) == 1
    finally:
        go.set()
        await recording
    states = await _states(own_database, endpoint_id)
    assert [s for _, s in states] == ["delivered", "pending"], states
    [job] = await a.claim(now, 10)  # due now, not after the 5-second safety net
    assert job.event_type == "call.completed"
    await a.aclose()
    await b.aclose()


async def _waits_for_a_lock(db: DbHandle) -> bool:
    async with db.db.session(write=False) as s:
        return bool(await s.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")))


async def test_successor_fanned_out_while_the_other_sender_records_the_result(
        own_database: DbHandle) -> None:
    """A fans out event 2 behind event 1's delivery in flight and is held before its commit;
    meanwhile B records event 1's delivery. Whichever order the commits land in, B's
    promotion must see A's row."""
    _, endpoint_id, now, _, a, b, first = await _first_delivery_in_flight(own_database)
    entered, go = asyncio.Event(), asyncio.Event()
    a._dispatch = _held(a._dispatch, entered, go)  # type: ignore[method-assign]
    fanning = asyncio.create_task(a.dispatch(now))
    recording: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(entered.wait(), 10)
        recording = asyncio.create_task(b.record([_ok(first, now)]))
        # B either finishes at once or waits for A's transaction (a bounded poll of an
        # observable state, not a sleep standing in for one).
        for _ in range(500):
            if recording.done() or await _waits_for_a_lock(own_database):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("B neither finished nor waited")
    finally:
        go.set()
        assert await asyncio.wait_for(fanning, 10) == 1
        if recording is not None:
            await asyncio.wait_for(recording, 10)
    states = await _states(own_database, endpoint_id)
    assert [s for _, s in states] == ["delivered", "pending"], states
    [job] = await b.claim(now, 10)
    assert job.event_type == "call.completed"
    await a.aclose()
    await b.aclose()
