"""The sender against a recording receiver (httpx.MockTransport), with the test app's fixed
clock: signatures, fan-out, retries and backoff, manual retry, test events, lease expiry,
per-subject order, retention, metrics and logs."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import orjson
import structlog
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from callfleet.webhooks.models import WebhookDelivery
from callfleet.webhooks.outbox import OutboxEvent
from callfleet.webhooks.retry import RetryPolicy
from tests.conftest import DbHandle, TeamCtx
from tests.webhooks.helpers import (
    Receiver,
    create_webhook,
    drain,
    emit_events,
    make_sender,
    reference_verify,
)

CALL = {"call": {"id": "call_x", "status": "ended"}}


async def deliveries(database: DbHandle, webhook_id: str) -> list[WebhookDelivery]:
    async with database.db.session(write=False) as s:
        return list(await s.scalars(select(WebhookDelivery)
                                    .where(WebhookDelivery.endpoint_id == webhook_id)
                                    .order_by(WebhookDelivery.event_seq)))


async def test_signed_body_and_headers(app: Any, client: httpx.AsyncClient, team: TeamCtx,
                                       database: DbHandle) -> None:
    wh = await create_webhook(client, team)
    now = app.state.clock.now()
    [event_id] = await emit_events(database, team.id, now,
                                   ("call.completed", "call_1", {"call": {"id": "call_1"}}))
    rx = Receiver()
    await drain(make_sender(app, database, rx))
    [got] = rx.at(wh["url"])
    h = got.headers
    assert reference_verify(wh["secret"], h["callfleet-signature"], got.body, time.time())
    assert not reference_verify("whsec_wrong", h["callfleet-signature"], got.body, time.time())
    assert not reference_verify(wh["secret"], h["callfleet-signature"], got.body + b" ",
                                time.time())
    assert not reference_verify(wh["secret"], h["callfleet-signature"], got.body,
                                time.time() + 301)  # outside the 5-minute tolerance
    assert h["callfleet-event-id"] == event_id and h["callfleet-event-type"] == "call.completed"
    assert h["user-agent"].startswith("callfleet/") and h["content-type"] == "application/json"
    assert h["callfleet-delivery-attempt"] == "1"
    body = got.json
    assert list(body) == ["id", "type", "created_at", "data"]
    assert body["id"] == event_id and body["type"] == "call.completed"
    assert body["data"] == {"call": {"id": "call_1"}} and body["created_at"].endswith("Z")
    assert got.body == orjson.dumps(body)  # compact: the exact bytes that were signed
    [d] = await deliveries(database, wh["id"])
    assert d.status == "delivered" and d.attempts == 1 and d.last_status_code == 200
    assert d.attempt_log[0]["status_code"] == 200 and d.attempt_log[0]["response"] == "ok"
    r = await client.get(f"/api/webhooks/{wh['id']}/deliveries", headers=team.headers,
                         params={"status": "delivered"})
    listed = r.json()
    assert listed["count"] == 1 and listed["deliveries"][0]["event_id"] == event_id
    assert listed["deliveries"][0]["payload"] == body
    assert wh["secret"] not in r.text


async def test_fan_out_follows_team_enabled_and_event_filter(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx,
    database: DbHandle,
) -> None:
    every = await create_webhook(client, team)
    calls_only = await create_webhook(client, team, events=["call.completed"])
    disabled = await create_webhook(client, team, enabled=False)
    theirs = await create_webhook(client, other_team)
    now = app.state.clock.now()
    await emit_events(database, team.id, now, ("call.completed", "call_a", CALL),
                      ("campaign.started", "camp_a", {"campaign": {}}),
                      ("contact.updated", "cont_a", {"contact": {}}))
    await emit_events(database, other_team.id, now, ("call.completed", "call_b", CALL))
    rx = Receiver()
    await drain(make_sender(app, database, rx))
    assert [r.json["type"] for r in rx.at(every["url"])] == [
        "call.completed", "campaign.started", "contact.updated"]
    assert [r.json["type"] for r in rx.at(calls_only["url"])] == ["call.completed"]
    assert rx.at(disabled["url"]) == [] and await deliveries(database, disabled["id"]) == []
    assert [r.json["data"] for r in rx.at(theirs["url"])] == [CALL]
    # one delivery row per endpoint x event, and every event of both teams is dispatched
    assert len(await deliveries(database, every["id"])) == 3
    async with database.db.session(write=False) as s:
        left = await s.scalar(select(OutboxEvent.id).where(
            OutboxEvent.team_id.in_([team.id, other_team.id]),
            OutboxEvent.dispatched_at.is_(None)))
    assert left is None


def test_backoff_schedule_grows_x3_with_jitter_and_a_cap() -> None:
    p = RetryPolicy(base_seconds=10, max_seconds=3600, window_seconds=86400)
    assert [p.delay(n) for n in range(1, 9)] == [10, 30, 90, 270, 810, 2430, 3600, 3600]
    assert p.delay(1, 0.0) == 8 and p.delay(1, 0.999999) < 12.0001 and p.delay(30, 1.0) == 3600
    # retried for at least 24 h: keep failing on schedule and count the span
    start = t = __import__("datetime").datetime(2030, 1, 1)
    attempts = 1
    while (nxt := p.next_attempt_at(start, t, attempts, 0.5)) is not None:
        t, attempts = nxt, attempts + 1
    assert (t - start) >= timedelta(hours=24) and (t - start) < timedelta(hours=25)
    assert 25 <= attempts <= 35


async def test_failing_endpoint_is_retried_on_schedule_then_failed(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    wh = await create_webhook(client, team)
    rx = Receiver()
    rx.rules[wh["url"]] = lambda r: 503
    sender = make_sender(app, database, rx)
    start = app.state.clock.now()
    await emit_events(database, team.id, start, ("contact.updated", "cont_r", {"x": 1}))
    await drain(sender)
    [d] = await deliveries(database, wh["id"])
    assert (d.status, d.attempts, d.last_status_code) == ("pending", 1, 503)
    assert d.last_error == "HTTP 503"
    first_delay = (d.next_attempt_at - app.state.clock.now()).total_seconds()
    assert 8 <= first_delay <= 12
    # nothing is sent before it is due
    app.state.clock.advance(seconds=first_delay - 1)
    await drain(sender)
    assert len(rx.at(wh["url"])) == 1
    gaps = []
    while True:
        [d] = await deliveries(database, wh["id"])
        if d.status != "pending":
            break
        gap = (d.next_attempt_at - app.state.clock.now()).total_seconds()
        gaps.append(gap)
        app.state.clock.at = d.next_attempt_at
        await drain(sender)
    assert d.status == "failed" and d.next_attempt_at is None
    assert app.state.clock.now() - start >= timedelta(hours=24)
    assert max(gaps) <= 3600 and gaps[1] > gaps[0] * 2
    assert len(rx.at(wh["url"])) == d.attempts
    assert [a["attempt"] for a in d.attempt_log][-3:] == [d.attempts - 2, d.attempts - 1,
                                                          d.attempts]
    assert all(a["status_code"] == 503 and a["duration_ms"] >= 0 for a in d.attempt_log)
    r = await client.get(f"/api/webhooks/{wh['id']}/deliveries", params={"status": "failed"},
                         headers=team.headers)
    assert r.json()["count"] == 1 and r.json()["deliveries"][0]["next_attempt_at"] is None

    # manual retry: one more attempt now, same event id; the receiver is back
    rx.rules.pop(wh["url"])
    r = await client.post(f"/api/webhooks/{wh['id']}/deliveries/{d.id}/retry",
                          headers=team.headers)
    assert r.status_code == 200, r.text
    assert r.json()["delivery"]["status"] == "pending"
    await drain(sender)
    [d2] = await deliveries(database, wh["id"])
    assert d2.status == "delivered" and d2.attempts == d.attempts + 1
    assert rx.at(wh["url"])[-1].headers["callfleet-event-id"] == d.event_id


async def test_timeouts_and_network_errors_are_retried(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    wh = await create_webhook(client, team)
    rx = Receiver()
    rx.scripts[wh["url"]] = [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), 302]
    sender = make_sender(app, database, rx)
    await emit_events(database, team.id, app.state.clock.now(), ("call.hangup", "call_t", CALL))
    for _ in range(4):
        await drain(sender)
        app.state.clock.advance(seconds=300)
    [d] = await deliveries(database, wh["id"])
    errors = [a["error"] for a in d.attempt_log]
    assert errors[0].startswith("timed out") and "ConnectError" in errors[1]
    assert errors[2] == "HTTP 302" and errors[3] is None  # a redirect is not followed
    assert d.status == "delivered" and d.attempts == 4


async def test_test_event_goes_to_that_endpoint_only(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    target = await create_webhook(client, team, events=["call.completed"], enabled=False)
    bystander = await create_webhook(client, team)
    r = await client.post(f"/api/webhooks/{target['id']}/test", headers=team.headers)
    assert r.status_code == 200, r.text
    d = r.json()["delivery"]
    assert d["event_type"] == "webhook.test" and d["status"] == "pending"
    assert d["webhook_id"] == target["id"] and d["id"].startswith("whd_")
    rx = Receiver()
    await drain(make_sender(app, database, rx))
    [got] = rx.at(target["url"])
    assert got.json["type"] == "webhook.test" and got.json["id"] == d["event_id"]
    assert got.json["data"]["webhook_id"] == target["id"]
    assert reference_verify(target["secret"], got.headers["callfleet-signature"], got.body,
                            time.time())
    assert rx.at(bystander["url"]) == []
    r = await client.get(f"/api/webhooks/{target['id']}/deliveries", headers=team.headers)
    assert r.json()["deliveries"][0]["status"] == "delivered"


async def test_a_killed_senders_delivery_is_redelivered_after_its_lease(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    wh = await create_webhook(client, team)
    await emit_events(database, team.id, app.state.clock.now(),
                      ("campaign.paused", "camp_l", {"campaign": {}}))
    rx = Receiver()
    dead = make_sender(app, database, rx, webhook_lease_seconds=30, webhook_timeout_seconds=5)
    while await dead.dispatch(app.state.clock.now()):
        pass
    jobs = await dead.claim(app.state.clock.now(), 1000)  # ... and then the process dies
    assert wh["id"] in {j.endpoint_id for j in jobs}
    [d] = await deliveries(database, wh["id"])
    assert d.status == "sending" and d.lease_owner == dead.worker_id
    r = await client.post(f"/api/webhooks/{wh['id']}/deliveries/{d.id}/retry",
                          headers=team.headers)
    assert r.status_code == 409  # being sent
    other = make_sender(app, database, rx, webhook_lease_seconds=30)
    await drain(other)
    assert rx.at(wh["url"]) == []  # the lease still holds
    app.state.clock.advance(seconds=31)
    await drain(other)
    [got] = rx.at(wh["url"])
    assert got.headers["callfleet-delivery-attempt"] == "2"
    [d] = await deliveries(database, wh["id"])
    assert d.status == "delivered" and d.attempts == 2 and d.lease_owner is None
    # the dead sender's late answer changes nothing (but is logged)
    job = next(j for j in jobs if j.endpoint_id == wh["id"])
    await dead.record([await dead.send(job)])
    [d] = await deliveries(database, wh["id"])
    assert d.status == "delivered" and len(d.attempt_log) == 2


async def test_per_subject_order_holds_while_an_earlier_event_is_pending(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    wh = await create_webhook(client, team)
    rx = Receiver()
    rx.scripts[wh["url"]] = [500]  # the first request fails
    sender = make_sender(app, database, rx)
    now = app.state.clock.now()
    # same timestamp: order comes from the outbox's commit order, not from ids or times
    await emit_events(database, team.id, now,
                      ("call.initiated", "call_o", CALL), ("call.ringing", "call_o", CALL),
                      ("call.answered", "call_o", CALL), ("contact.updated", "cont_o", CALL))
    await emit_events(database, team.id, now, ("call.hangup", "call_o", CALL),
                      ("call.completed", "call_o", CALL))
    await drain(sender)
    sent = [r.json["type"] for r in rx.at(wh["url"])]
    assert sent == ["call.initiated", "contact.updated"]  # call_o waits for its first event
    statuses = [(d.event_type, d.status) for d in await deliveries(database, wh["id"])]
    assert statuses[:3] == [("call.initiated", "pending"), ("call.ringing", "waiting"),
                            ("call.answered", "waiting")]
    r = await client.get(f"/api/webhooks/{wh['id']}/deliveries", params={"status": "waiting"},
                         headers=team.headers)
    assert r.json()["count"] == 4
    app.state.clock.advance(seconds=15)
    await drain(sender)
    types = [r.json["type"] for r in rx.at(wh["url"]) if r.json["type"].startswith("call.")]
    assert types == ["call.initiated", "call.initiated", "call.ringing", "call.answered",
                     "call.hangup", "call.completed"]


async def test_a_later_event_waits_for_an_earlier_one_not_yet_fanned_out(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    """Two PostgreSQL workers may fan out neighbouring batches out of order; a delivery is
    held while an earlier event of its subject is still undispatched."""
    wh = await create_webhook(client, team)
    rx = Receiver()
    sender = make_sender(app, database, rx)
    first, second = await emit_events(database, team.id, app.state.clock.now(),
                                      ("call.answered", "call_u", CALL),
                                      ("call.hangup", "call_u", CALL))
    while await sender.dispatch(app.state.clock.now()):
        pass
    async with database.db.session() as s:  # as if ``first`` were in another worker's batch
        await s.execute(update(OutboxEvent).where(OutboxEvent.id == first)
                        .values(dispatched_at=None))
        [d1] = [d for d in await s.scalars(select(WebhookDelivery).where(
            WebhookDelivery.event_id == first))]
        await s.delete(d1)
        await s.commit()
    jobs = await sender.claim(app.state.clock.now(), 1000)
    assert second not in {j.event_id for j in jobs}
    await sender.record([await sender.send(j) for j in jobs])
    await drain(sender)
    assert [r.json["id"] for r in rx.at(wh["url"])] == [first, second]


async def test_events_of_teams_without_endpoints_do_not_pile_up(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, other_team: TeamCtx,
    database: DbHandle,
) -> None:
    wh = await create_webhook(client, other_team)
    now = app.state.clock.now()
    quiet = await emit_events(database, team.id, now, ("contact.updated", "cont_q", {}))
    await emit_events(database, other_team.id, now, ("contact.updated", "cont_p", {}))
    rx = Receiver()
    rx.scripts[wh["url"]] = []
    sender = make_sender(app, database, rx, webhook_retention_days=7)
    await drain(sender)
    async with database.db.session(write=False) as s:
        ev = await s.get(OutboxEvent, quiet[0])
        assert ev is not None and ev.dispatched_at is not None
        assert await s.scalar(select(WebhookDelivery.id).where(
            WebhookDelivery.event_id == quiet[0])) is None
    # a still-pending delivery survives the retention pass; finished ones and events go
    rx2 = Receiver()
    rx2.rules[wh["url"]] = lambda r: 500
    await emit_events(database, other_team.id, now, ("contact.updated", "cont_k", {}))
    failing = make_sender(app, database, rx2, webhook_retention_days=7)
    await drain(failing)
    app.state.clock.advance(days=8)
    await sender.prune(app.state.clock.now())
    async with database.db.session(write=False) as s:
        assert await s.get(OutboxEvent, quiet[0]) is None
        left = list(await s.scalars(select(WebhookDelivery.status)
                                    .where(WebhookDelivery.endpoint_id == wh["id"])))
    assert left == ["pending"]


async def test_metrics_and_logs_never_show_the_secret(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    wh = await create_webhook(client, team)
    rx = Receiver()
    rx.scripts[wh["url"]] = [500]
    sender = make_sender(app, database, rx)

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (sample("callfleet_webhook_deliveries_total", result="retry"),
              sample("callfleet_webhook_deliveries_total", result="delivered"),
              sample("callfleet_webhook_attempts_total", outcome="5xx"))
    await emit_events(database, team.id, app.state.clock.now(), ("call.completed", "c_m", CALL))
    with structlog.testing.capture_logs() as logs:
        await drain(sender)
        app.state.clock.advance(seconds=15)
        await drain(sender)
        await sender.maintenance(force=True)
    after = (sample("callfleet_webhook_deliveries_total", result="retry"),
             sample("callfleet_webhook_deliveries_total", result="delivered"),
             sample("callfleet_webhook_attempts_total", outcome="5xx"))
    assert after[0] >= before[0] + 1 and after[1] >= before[1] + 1 and after[2] >= before[2] + 1
    assert REGISTRY.get_sample_value("callfleet_webhook_backlog", {"kind": "events"}) is not None
    assert any(e["event"] == "webhook_attempt_failed" for e in logs)
    assert wh["secret"] not in repr(logs) and wh["secret"][6:] not in repr(logs)
    r = await client.get("/metrics")
    assert "callfleet_webhook_backlog" in r.text and wh["secret"] not in r.text


async def test_the_run_loop_records_every_attempt(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    """``run`` sends in background tasks and records results in batches: no result may be
    lost while a batch is being written (each would cost a lease timeout and a resend)."""
    wh = await create_webhook(client, team)
    rx = Receiver()
    rx.scripts[wh["url"]] = [500, 500, 500]
    rx.latency = lambda r: 0.03 * orjson.loads(r.body)["data"]["i"]  # answers staggered
    # (the test moves the clock, which wakes nobody: a short idle wait)
    sender = make_sender(app, database, rx, webhook_tick_seconds=0.01, idle_max_seconds=0.05)
    await emit_events(database, team.id, app.state.clock.now(),
                      *[("contact.updated", f"cont_run{i}", {"i": i}) for i in range(5)])
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))

    async def until(check: Any) -> list[WebhookDelivery]:
        for _ in range(500):  # bounded poll of real work, not of the product's time
            rows = await deliveries(database, wh["id"])
            if len(rows) == 5 and check(rows):
                return rows
            await asyncio.sleep(0.01)
        raise AssertionError([(d.status, d.attempts, d.attempt_log) for d in rows])

    try:
        await until(lambda rows: sum(d.status == "delivered" for d in rows) == 2
                    and sum(d.status == "pending" for d in rows) == 3)
        app.state.clock.advance(seconds=15)
        rows = await until(lambda rows: all(d.status == "delivered" for d in rows))
    finally:
        stop.set()
        await task
    assert sorted(len(d.attempt_log) for d in rows) == [1, 1, 2, 2, 2]
    assert all(d.attempts == len(d.attempt_log) for d in rows)


async def test_a_waiting_delivery_left_alone_by_a_race_is_promoted(
    app: Any, client: httpx.AsyncClient, team: TeamCtx, database: DbHandle
) -> None:
    """Two PostgreSQL workers can leave a ``waiting`` delivery whose predecessor finished
    meanwhile; the periodic safety net promotes it."""
    wh = await create_webhook(client, team)
    rx = Receiver()
    sender = make_sender(app, database, rx)
    [event_id] = await emit_events(database, team.id, app.state.clock.now(),
                                   ("call.ringing", "call_w", CALL))
    while await sender.dispatch(app.state.clock.now()):
        pass
    async with database.db.session() as s:
        await s.execute(update(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
                        .values(status="waiting", next_attempt_at=None))
        await s.commit()
    await drain(sender)
    assert rx.at(wh["url"]) == []
    assert await sender.unstick(app.state.clock.now()) >= 1
    await drain(sender)
    assert [r.json["id"] for r in rx.at(wh["url"])] == [event_id]
