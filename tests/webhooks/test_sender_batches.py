"""The sender's run loop with many deliveries in flight: per-subject order and the
per-endpoint concurrency limit hold, a slow endpoint does not hold back a fast one, and a
sender process killed in the middle of a batch loses nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from cryptography.fernet import Fernet
from sqlalchemy import select

from callfleet.clock import FixedClock
from callfleet.outbound import parse_networks
from callfleet.teams.principal import Principal
from callfleet.teams.service import create_team
from callfleet.webhooks import service as webhooks
from callfleet.webhooks.models import WebhookDelivery
from callfleet.webhooks.outbox import OutboxEvent
from callfleet.webhooks.secrets import SecretBox
from callfleet.webhooks.sender import DISPATCH_GAP, WebhookSender
from tests.conftest import DbHandle, TeamCtx, make_settings
from tests.webhooks.helpers import (
    Receiver,
    create_webhook,
    drain,
    emit_events,
    read_request,
)

TYPES = ("call.initiated", "call.ringing", "call.answered", "call.completed")


async def rows(database: DbHandle, *webhook_ids: str) -> list[WebhookDelivery]:
    async with database.db.session(write=False) as s:
        return list(await s.scalars(select(WebhookDelivery).where(
            WebhookDelivery.endpoint_id.in_(webhook_ids))))


async def seqs(database: DbHandle, event_ids: list[str]) -> dict[str, int]:
    async with database.db.session(write=False) as s:
        return {i: int(q or 0) for i, q in await s.execute(
            select(OutboxEvent.id, OutboxEvent.seq).where(OutboxEvent.id.in_(event_ids)))}


async def emit_calls(database: DbHandle, team_id: str, at: Any, calls: int, tag: str
                     ) -> list[str]:
    """Each call's events in order, in two transactions, calls interleaved."""
    ids: list[str] = []
    for half in (TYPES[:2], TYPES[2:]):
        ids += await emit_events(database, team_id, at, *[
            (kind, f"call_{tag}{n}", {"call": {"id": f"call_{tag}{n}"}})
            for n in range(calls) for kind in half])
    return ids


async def test_order_per_subject_and_concurrency_per_endpoint(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    fast, slow = await create_webhook(client, team), await create_webhook(client, team)
    rx = Receiver()
    rng = random.Random(3)
    rx.latency = lambda r: 0.15 if r.url == slow["url"] else rng.uniform(0, 0.01)
    now_open: dict[str, int] = defaultdict(int)
    most_open: dict[str, int] = defaultdict(int)
    finished: dict[str, list[float]] = defaultdict(list)
    answer = rx.__call__

    async def counting(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        now_open[url] += 1
        most_open[url] = max(most_open[url], now_open[url])
        try:
            return await answer(request)
        finally:
            now_open[url] -= 1
            finished[url].append(time.monotonic())

    sender = WebhookSender(database.db, app.state.clock,
                           make_settings(database.url, webhook_endpoint_concurrency=4,
                                         webhook_max_in_flight=64, idle_max_seconds=0.05),
                           transport=httpx.MockTransport(counting))
    event_ids = await emit_calls(database, team.id, app.state.clock.now(), 15, "ord")
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        for _ in range(1000):  # a bounded poll of real work
            got = await rows(database, fast["id"], slow["id"])
            if len(got) == 2 * len(event_ids) and all(d.status == "delivered" for d in got):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(sorted((d.status, d.event_type) for d in got))
    finally:
        stop.set()
        await task
    order = await seqs(database, event_ids)
    for url in (fast["url"], slow["url"]):
        received = [orjson.loads(r.body) for r in rx.at(url)]
        assert sorted(e["id"] for e in received) == sorted(event_ids)  # each once
        by_subject: dict[str, list[int]] = defaultdict(list)
        for e in received:
            by_subject[e["data"]["call"]["id"]].append(order[e["id"]])
        assert all(s == sorted(s) for s in by_subject.values()), by_subject
        assert 2 <= most_open[url] <= 4, most_open  # concurrent, within the limit
    # The slow endpoint (60 x 0.15 s over 4 lanes) did not hold back the fast one.
    assert max(finished[fast["url"]]) < max(finished[slow["url"]]) - 1.0


def test_an_endpoint_holds_a_deeper_queue_the_faster_it_answers(database: DbHandle) -> None:
    sender = WebhookSender(database.db, FixedClock(datetime.now(UTC)), make_settings(
        database.url, webhook_endpoint_concurrency=4, webhook_lease_seconds=30,
        webhook_timeout_seconds=5))
    sender._held.update({"fast": 31, "fast_full": 32, "slow": 4, "slow_ok": 3, "new": 4})
    sender._answer_seconds.update({"fast": 0.002, "fast_full": 0.002, "slow": 4.0,
                                   "slow_ok": 4.0})
    # fast: 8 per lane (32); slow: 30 s / (4 x 4 s) = 1 per lane (4); unknown: 1 per lane
    assert sender._saturated() == {"fast_full", "slow", "new"}


SENDER_PROCESS = """
import asyncio, sys
from callfleet.clock import Clock
from callfleet.config import Settings
from callfleet.db.session import open_database
from callfleet.webhooks.sender import DISPATCH_GAP, WebhookSender

async def main() -> None:
    db = open_database(sys.argv[1])
    sender = WebhookSender(db, Clock(1.0), Settings(
        database_url=sys.argv[1], webhook_endpoint_concurrency=4, webhook_timeout_seconds=5,
        webhook_lease_seconds=30), worker_id="doomed")
    await sender.run(asyncio.Event())

asyncio.run(main())
"""


class HookServer:
    """A real HTTP/1.1 receiver that answers 200 after 50 ms and records (event id,
    attempt) in arrival order."""

    def __init__(self) -> None:
        self.got: list[tuple[str, int]] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _, fields, _ = await read_request(reader)
                self.got.append((fields[b"callfleet-event-id"].decode(),
                                 int(fields[b"callfleet-delivery-attempt"])))
                await asyncio.sleep(0.05)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_a_sender_killed_mid_batch_loses_nothing(own_database: DbHandle) -> None:
    key = Fernet.generate_key().decode()
    box = SecretBox([key.encode()])
    rx = HookServer()
    url = await rx.start()
    async with own_database.db.session() as s:
        team, _ = await create_team(s, "Killed")
        wh = await webhooks.create_endpoint(s, Principal(team.id, team.slug, "test"),
                                            {"url": url}, box, parse_networks("127.0.0.0/8"))
        await s.commit()
    start = datetime.now(UTC)
    event_ids = await emit_calls(own_database, team.id, start, 10, "kill")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLEET_")}
    env["CALLFLEET_SECRET_KEY"] = key
    env["CALLFLEET_OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.0/8"  # the receiver is on loopback
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SENDER_PROCESS,
                                                own_database.url, env=env)
    heir = WebhookSender(own_database.db, FixedClock(start + timedelta(hours=1)),
                         make_settings(own_database.url,
                                       outbound_allowed_networks="127.0.0.0/8"), box=box)
    try:
        for _ in range(3000):  # until the doomed sender has recorded some and sends more
            if proc.returncode is not None:
                raise AssertionError(f"the sender exited with {proc.returncode}")
            states = {d.status for d in await rows(own_database, wh["id"])}
            if len(rx.got) >= 8 and {"delivered", "sending"} <= states:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"{len(rx.got)} received")
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30)
        at_kill = {d.event_id: d.status for d in await rows(own_database, wh["id"])}
        assert "sending" in at_kill.values()
        # Another sender, once the dead one's leases ran out, delivers everything.
        for _ in range(50):
            await drain(heir)
            final = await rows(own_database, wh["id"])
            if all(d.status == "delivered" for d in final):
                break
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        rx.server.close()
        await heir.aclose()
    assert len(final) == len(event_ids) and all(d.status == "delivered" for d in final)
    first: dict[str, int] = {}
    for event_id, _attempt in rx.got:
        first.setdefault(event_id, len(first))
    assert set(first) == set(event_ids)  # nothing lost
    # What was in flight at the kill was sent again, as attempt 2 of the same delivery.
    resent = {e for e, status in at_kill.items() if status == "sending"}
    assert all((e, 2) in rx.got for e in resent)
    # Per-subject order of first arrivals held across the kill.
    order = await seqs(own_database, event_ids)
    subject = {d.event_id: d.subject_id for d in final}
    by_subject: dict[str | None, list[int]] = defaultdict(list)
    for event_id in sorted(first, key=first.__getitem__):
        by_subject[subject[event_id]].append(order[event_id])
    assert all(s == sorted(s) for s in by_subject.values()), by_subject


async def test_wake_ups_while_busy_are_gathered_into_one_fan_out(
        own_database: DbHandle) -> None:
    """After a fan-out that found events, the wake-ups of the commits that follow within
    DISPATCH_GAP wait for one fan-out at the end of the gap (they no longer each start a
    transaction beside the dialer's); after an idle fan-out a wake-up fans out at once."""
    async with own_database.db.session() as s:
        team, _ = await create_team(s, "Gap")
        await s.commit()
    now = datetime.now(UTC)
    sender = WebhookSender(own_database.db, FixedClock(now), make_settings(own_database.url))
    loop_time = [1000.0]
    sender._loop_time = lambda: loop_time[0]  # type: ignore[method-assign]

    async def undispatched(event_ids: list[str]) -> int:
        async with own_database.db.session(write=False) as s:
            return len(list(await s.scalars(select(OutboxEvent.id).where(
                OutboxEvent.id.in_(event_ids), OutboxEvent.dispatched_at.is_(None)))))

    first = await emit_events(own_database, team.id, now, ("call.initiated", "c1", {}))
    await sender._pass(woken=True)  # idle before: at once
    assert await undispatched(first) == 0
    second = await emit_events(own_database, team.id, now, ("call.ringing", "c1", {}))
    loop_time[0] += DISPATCH_GAP / 2
    await sender._pass(woken=True)  # within the gap after a busy fan-out: held
    assert await undispatched(second) == 1 and 0 < sender._hold() <= DISPATCH_GAP / 2 + 1e-6
    third = await emit_events(own_database, team.id, now, ("call.ringing", "c1", {}))
    loop_time[0] += DISPATCH_GAP / 4
    await sender._pass(woken=True)
    assert await undispatched(second + third) == 2
    loop_time[0] += DISPATCH_GAP / 4 + 0.001
    await sender._pass(woken=False)  # the gap is over: the held wake-up fans out both
    assert await undispatched(second + third) == 0 and sender._hold() == 0
    # A fan-out that finds nothing ends the busy spell: the next wake-up goes at once.
    loop_time[0] += sender.settings.webhook_tick_seconds
    await sender._pass(woken=False)
    fourth = await emit_events(own_database, team.id, now, ("call.ringing", "c1", {}))
    loop_time[0] += 0.001
    await sender._pass(woken=True)
    assert await undispatched(fourth) == 0
