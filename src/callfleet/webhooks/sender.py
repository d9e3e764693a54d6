"""The webhook sender: fans outbox events out to endpoints and delivers them, at least once.

Each pass (``run`` loops; tests call ``tick``) is one write transaction, in this order:

1. **record** — write the results gathered since the last pass (a batch: one read of the
   rows, one executemany), promoting the successors of delivered events. First, so that on
   PostgreSQL only these statements wait for another sender's row locks
   (docs/decisions/0049-successor-promotion-across-senders.md).
2. **dispatch** — claim undispatched outbox events in commit order (``seq``; ``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL, so several workers share the work; SQLite has one writer), insert
   one delivery row per enabled endpoint whose ``events`` match, and mark the events
   dispatched. Events of teams without endpoints are marked at once. A delivery that must
   wait behind an earlier one of its subject locks that one (``FOR SHARE``), so the sender
   recording it sees the waiting row and promotes it (0049).
3. **claim** — take due deliveries (``pending`` and due, or ``sending`` whose lease ran
   out) up to the free in-flight slots: status ``sending``, ``lease_owner`` = this worker, ``next_attempt_at`` = lease expiry. A delivery
   is not taken while an earlier event of the same subject (call, campaign, contact) is
   still pending for the same endpoint, or not yet dispatched: per-subject order
   (docs/webhooks.md), which is also why deliveries sent at the same time never share a
   subject and endpoint.
4. **send** — signed POSTs, each in its own task: at most ``webhook_endpoint_concurrency`` at
   once per endpoint (over kept-alive HTTP/1.1 connections, webhooks/http.py) and
   ``webhook_max_in_flight`` in all, each bounded by ``webhook_timeout_seconds``.
5. results: 2xx = ``delivered``; anything else schedules the next attempt
   (webhooks/retry.py) or, after the retry window, ``failed``. A result is applied only by
   the lease owner; a sender killed mid-flight leaves ``sending`` rows that any sender
   retries once their lease expires (at-least-once; receivers dedupe on the id).

The loop is driven by events: a wake-up when events are written (``callfleet.wakeup``),
sends finishing, a short timer that gathers results into batches, the next due retry; an
idle sender waits with a growing back-off (docs/decisions/0021-webhook-throughput.md).

Times (next attempts, leases, retention) come from the injected clock, so tests move time
instead of sleeping; HTTP timeouts and the signature timestamp are real time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import httpx
import structlog
from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callfleet import __version__, ids
from callfleet.clock import Clock
from callfleet.config import Settings
from callfleet.db.base import iso
from callfleet.db.session import Database
from callfleet.outbound import OutboundPolicy, OutboundURLRejected
from callfleet.wakeup import IdleWait, due_in_seconds
from callfleet.webhooks import metrics
from callfleet.webhooks.http import KeepAliveTransport
from callfleet.webhooks.models import WebhookDelivery, WebhookEndpoint
from callfleet.webhooks.outbox import TEST_EVENT, OutboxEvent
from callfleet.webhooks.retry import RetryPolicy
from callfleet.webhooks.secrets import SecretBox, SecretKeyError, secret_box
from callfleet.webhooks.service import matches
from callfleet.webhooks.signing import SIGNATURE_HEADER, event_body, signature_header

log = structlog.get_logger("callfleet.webhooks")
# httpx logs every request's full URL at INFO; receivers' URLs may carry tokens.
logging.getLogger("httpx").setLevel(logging.WARNING)

ATTEMPT_LOG_MAX = 50
UNFINISHED = ("waiting", "pending", "sending")
SNIPPET_BYTES = 512
PRUNE_BATCH = 5000
USER_AGENT = f"callfleet/{__version__}"
# Results are written when this many are gathered, when nothing else is in flight, or when
# the oldest has waited FLUSH_SECONDS: batches for the database, little added lag.
FLUSH_RESULTS = 32
FLUSH_SECONDS = 0.01
# Deliveries held for one endpoint (sending, or waiting for one of its lanes): up to this
# many per lane while its answers are fast, fewer as they slow down, so that a delivery
# waiting for a lane is sent long before its lease runs out (_saturated).
HELD_PER_LANE = 8
# After a fan-out that found events, a wake-up waits this long since that fan-out before the
# next one: while the dialer commits events many times a second, the sender gathers them
# into fewer, larger fan-outs instead of one transaction per commit competing with the
# dialer's (docs/decisions/0045-sender-wake-up-gap.md). An idle sender fans out at once.
DISPATCH_GAP = 0.1
SECRET_CACHE = 1000  # decrypted endpoint secrets kept in memory


def _promote_statement() -> Any:
    D = WebhookDelivery
    earlier = aliased(WebhookDelivery, name="earlier")
    heads = (select(D.endpoint_id, D.subject_id, func.min(D.event_seq))
             .where(D.status == "waiting", D.subject_id.in_(bindparam("subjects",
                                                                      expanding=True)))
             .group_by(D.endpoint_id, D.subject_id))
    blocked = exists().where(
        earlier.endpoint_id == D.endpoint_id, earlier.subject_id == D.subject_id,
        earlier.event_seq < D.event_seq, earlier.status.in_(("pending", "sending")))
    now = bindparam("now", type_=D.next_attempt_at.type)
    return (update(D).where(D.status == "waiting",
                            tuple_(D.endpoint_id, D.subject_id, D.event_seq).in_(heads),
                            ~blocked)
            .values(status="pending", next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False))


PROMOTE = _promote_statement()
# The pass's commit does not wait for its WAL flush (PostgreSQL): a pass lost in a crash of
# the database server is done again (fan-out) or its deliveries are sent again after their
# lease (claims, results): at-least-once holds (docs/decisions/0047-webhooks-on-postgresql.md).
ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")
PENDING_EVENT = select(OutboxEvent.id).where(OutboxEvent.dispatched_at.is_(None)).limit(1)
DUE_DELIVERY = select(WebhookDelivery.id).where(
    WebhookDelivery.status.in_(("pending", "sending")),
    WebhookDelivery.next_attempt_at <= bindparam(
        "now", type_=WebhookDelivery.next_attempt_at.type)).limit(1)


def sender_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Job:
    delivery_id: str
    endpoint_id: str
    url: str
    secret_encrypted: str
    payload: str
    event_id: str
    event_type: str
    attempt: int


@dataclass(frozen=True)
class Result:
    delivery_id: str
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(
        self, db: Database, clock: Clock, settings: Settings, *,
        transport: httpx.AsyncBaseTransport | None = None, worker_id: str | None = None,
        box: SecretBox | None = None, rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.worker_id = worker_id or sender_name()
        self.policy = RetryPolicy(settings.webhook_retry_base_seconds,
                                  settings.webhook_retry_max_seconds,
                                  settings.webhook_retry_window_seconds)
        self.timeout = settings.webhook_timeout_seconds
        self.max_in_flight = max(1, settings.webhook_max_in_flight)
        self.per_endpoint = max(1, settings.webhook_endpoint_concurrency)
        self._transport = transport
        self._box = box
        self._rng = rng or random.Random()
        self._client: httpx.AsyncClient | None = None
        self._results: list[Result] = []
        self._first_result_at = 0.0  # loop time of the oldest result not yet recorded
        self._inflight: set[asyncio.Task[None]] = set()
        self._held: Counter[str] = Counter()  # deliveries in flight per endpoint
        self._answer_seconds: dict[str, float] = {}  # per endpoint, a moving average
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self._secrets: dict[str, str] = {}  # encrypted -> clear, for the endpoints in use
        self._progress = asyncio.Event()  # enough results to record, or nothing in flight
        self._claim_more = True  # something may have become claimable since the last claim
        self._dispatch_more = True
        self._last_dispatch = 0.0
        self._last_dispatch_busy = False  # the last fan-out found events
        self._wake_pending = False  # a wake-up not yet answered by a fan-out
        self._last_claim = 0.0
        self._last_prune = 0.0
        self._last_gauges = 0.0
        self._quiet_gauges = False  # the last gauges read nothing and nothing happened since

    # ------------------------------------------------------------ plumbing

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = secret_box(self.settings)
        return self._box

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> httpx.AsyncClient:
        """The HTTP client every delivery goes through (built here and nowhere else).
        Endpoint URLs are tenant-set: every new connection goes only to an address the
        outbound policy allows, checked on the address actually resolved (callfleet.outbound);
        no redirect is followed and no proxy from the environment is used."""
        policy = OutboundPolicy.from_settings(self.settings)
        return httpx.AsyncClient(
            transport=self._transport or KeepAliveTransport(
                max_per_origin=self.per_endpoint, resolve=policy.permitted_addresses),
            follow_redirects=False, trust_env=False, timeout=httpx.Timeout(self.timeout))

    @property
    def lease(self) -> timedelta:
        """Longer than one attempt can take, in simulated time."""
        real = max(self.settings.webhook_lease_seconds, 2 * self.timeout)
        return self.clock.sim_delta(real)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _secret(self, encrypted: str) -> str:
        secret = self._secrets.get(encrypted)
        if secret is None:
            secret = self.box.decrypt(encrypted)
            if len(self._secrets) >= SECRET_CACHE:
                self._secrets.clear()
            self._secrets[encrypted] = secret
        return secret

    # ------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        log.info("webhook_sender_started", worker=self.worker_id)
        tick = self.settings.webhook_tick_seconds
        with IdleWait(self.db, "webhooks", base=tick,
                      cap=self.settings.idle_max_seconds) as idle:
            try:
                while not stop.is_set():
                    woken = idle.arm()
                    self._progress.clear()
                    try:
                        work = await self._pass(woken)
                    except Exception:
                        log.exception("webhook_pass_failed", worker=self.worker_id)
                        await idle.sleep(stop, tick)
                        continue
                    if work:
                        idle.busy()
                    # A wake-up held back by the gap: sleep until the gap ends, not woken
                    # again by the commits that keep coming meanwhile.
                    hold = self._hold()
                    wake = hold <= 0
                    cap = hold if hold > 0 else float("inf")
                    if self._results:  # gather more results, up to FLUSH_SECONDS
                        left = FLUSH_SECONDS - (self._loop_time() - self._first_result_at)
                        await idle.sleep(stop, min(max(0.0, left), cap), wake=wake,
                                         also=self._progress)
                    elif self._inflight:  # requests out, nothing to write yet
                        await idle.sleep(stop, min(tick, cap), wake=wake, also=self._progress)
                    elif work:
                        await asyncio.sleep(0)
                    elif hold > 0:
                        await idle.sleep(stop, hold)
                    else:
                        await idle.idle(stop, self._due_in)
            finally:
                if self._inflight:  # let attempts under way finish (each is bounded)
                    await asyncio.wait(self._inflight, timeout=self.timeout + 1)
                try:
                    await self.flush()
                except Exception:
                    log.exception("webhook_flush_failed", worker=self.worker_id)
                await self.aclose()

    def _gap_left(self, now_loop: float) -> float:
        """Seconds until a wake-up may start a fan-out (0 after an idle one)."""
        if not self._last_dispatch_busy:
            return 0.0
        return max(0.0, DISPATCH_GAP - (now_loop - self._last_dispatch))

    def _hold(self) -> float:
        """Seconds a pending wake-up still waits for its fan-out (0: none waits)."""
        return self._gap_left(self._loop_time()) if self._wake_pending else 0.0

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def _pass(self, woken: bool = False) -> int:
        """Fan out when events may be waiting, record when enough results are gathered,
        claim when slots are free, all in one transaction, and start the claimed sends.
        Touches the database only when one of those is due (a pass runs after every batch
        of finished sends)."""
        tick = self.settings.webhook_tick_seconds
        now_loop = self._loop_time()
        self._wake_pending = self._wake_pending or woken
        dispatch = (self._dispatch_more or now_loop - self._last_dispatch >= tick
                    or (self._wake_pending and self._gap_left(now_loop) <= 0))
        free = self.max_in_flight - len(self._inflight)
        flush = bool(self._results) and (
            len(self._results) >= FLUSH_RESULTS or not self._inflight
            or now_loop - self._first_result_at >= FLUSH_SECONDS)
        # Claims ride along with a flush or a fan-out, or come when many slots are free:
        # not a transaction for each slot that frees.
        claim = free > 0 and (dispatch or self._claim_more or now_loop - self._last_claim >= tick
                              ) and (flush or dispatch or not self._inflight
                                     or free >= min(FLUSH_RESULTS, self.max_in_flight))
        if not (dispatch or flush or claim):
            return 0
        results, self._results = (self._results, []) if flush else ([], self._results)
        limit = free if claim else 0
        try:
            # Woken, or more is known to wait: no need to look before taking the lock.
            dispatched, jobs = await self._step(
                self.clock.now(), dispatch=dispatch, results=results, limit=limit,
                skip=self._saturated(),
                look=not ((dispatch and self._wake_pending) or self._dispatch_more or results))
        except Exception:
            self._results = results + self._results  # keep them for the next pass
            raise
        if dispatch:
            self._last_dispatch = now_loop
            self._last_dispatch_busy = dispatched > 0
            self._wake_pending = False
            self._dispatch_more = dispatched >= self.settings.webhook_batch
        if claim:
            self._last_claim = now_loop
            self._claim_more = len(jobs) >= limit
        if results or dispatched:
            # Finished deliveries may have freed their successors; new ones may be due.
            self._claim_more = True
            self._quiet_gauges = False
        for job in jobs:
            self._held[job.endpoint_id] += 1
            task = asyncio.create_task(self._send_and_keep(job))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        await self.maintenance()
        return dispatched + len(results) + len(jobs)

    async def _step(self, now: datetime, *, dispatch: bool, results: list[Result],
                    limit: int, skip: set[str], look: bool) -> tuple[int, list[Job]]:
        """One write transaction: record ``results``, fan out, claim up to ``limit``.
        With ``look``, a read first checks there is something to fan out or claim (an idle
        pass takes no write lock)."""
        if look and not results:
            async with self.db.session(write=False) as s:
                if dispatch and await s.scalar(PENDING_EVENT) is None:
                    dispatch = False
                if limit and not dispatch and await s.scalar(
                        DUE_DELIVERY, {"now": now}) is None:
                    limit = 0
            if not (dispatch or limit):
                return 0, []
        async with self.db.session() as s:
            if not self.db.is_sqlite:
                await s.execute(ASYNC_COMMIT)
            # Results before the fan-out: on PostgreSQL only the results' statements wait
            # for another sender's row locks (the fan-out and the claim skip locked rows),
            # and they wait holding no lock taken by a fan-out, so two senders' passes
            # cannot deadlock (docs/decisions/0049-successor-promotion-across-senders.md).
            if results:
                await self._apply(s, results)
            dispatched = await self._dispatch(s, now) if dispatch else 0
            jobs = await self._claim(s, now, limit, skip) if limit > 0 else []
            await s.commit()
        return dispatched, jobs

    def _saturated(self) -> set[str]:
        """Endpoints holding enough deliveries already: claiming more for them would only
        let leases run down while they wait for a lane. A lane may queue as many
        deliveries as fit in a quarter of the lease at the endpoint's recent answer time
        (at most HELD_PER_LANE; one while that time is unknown)."""
        lease = max(self.settings.webhook_lease_seconds, 2 * self.timeout)
        full: set[str] = set()
        for ep, n in self._held.items():
            seconds = self._answer_seconds.get(ep)
            depth = 1 if seconds is None else max(1, min(
                HELD_PER_LANE, int(lease / (4 * max(seconds, 0.001)))))
            if n >= depth * self.per_endpoint:
                full.add(ep)
        return full

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        n = len(self._results)
        if n == 1 or n >= FLUSH_RESULTS or not self._inflight:  # (1: start the flush timer)
            self._progress.set()

    async def _send_and_keep(self, job: Job) -> None:
        try:
            result = await self.send(job)
        finally:
            self._held[job.endpoint_id] -= 1
            if self._held[job.endpoint_id] <= 0:
                del self._held[job.endpoint_id]
        # The endpoint's recent answer time (moving average), for _saturated.
        seconds = result.duration_ms / 1000
        if len(self._answer_seconds) > 10_000:
            self._answer_seconds.clear()
        before = self._answer_seconds.get(job.endpoint_id, seconds)
        self._answer_seconds[job.endpoint_id] = 0.8 * before + 0.2 * seconds
        # Appended after the await: ``flush`` swaps the list while the request is out.
        if not self._results:
            self._first_result_at = self._loop_time()
        self._results.append(result)

    async def _due_in(self) -> float | None:
        """Real seconds until the next delivery is due (a retry, or a lease running out)."""
        async with self.db.session(write=False) as s:
            due = await s.scalar(select(func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.status.in_(("pending", "sending"))))
        return due_in_seconds(self.clock, due)

    async def tick(self) -> int:
        """One complete pass, waiting for its sends: dispatch, claim, send, record."""
        work = await self.dispatch(self.clock.now())
        jobs = await self.claim(self.clock.now(), self.max_in_flight)
        self._results.extend(await asyncio.gather(*(self.send(j) for j in jobs)))
        await self.flush()
        return work + len(jobs)

    async def maintenance(self, *, force: bool = False) -> None:
        """Gauges and the ``waiting`` safety net every 5 s while there is work (once a
        minute when idle); retention once a minute."""
        loop_time = self._loop_time()
        every = 60.0 if self._quiet_gauges else 5.0
        if force or loop_time - self._last_gauges >= every:
            self._last_gauges = loop_time
            backlog = await self.update_gauges()
            await self.unstick(self.clock.now())
            self._quiet_gauges = backlog == (0, 0)
        if force or loop_time - self._last_prune >= 60.0:
            self._last_prune = loop_time
            await self.prune(self.clock.now())

    # ------------------------------------------------------------ 1. dispatch

    async def dispatch(self, now: datetime) -> int:
        """Fan out up to ``webhook_batch`` outbox events; returns how many were taken."""
        return (await self._step(now, dispatch=True, results=[], limit=0, skip=set(),
                                 look=True))[0]

    async def _dispatch(self, s: AsyncSession, now: datetime) -> int:
        """The fan-out, in the caller's transaction."""
        events_sql, endpoints_sql, busy_sql, payloads_sql, done_sql = self._dispatch_sql
        events = list(await s.execute(events_sql, {"limit": max(1, self.settings.webhook_batch)}))
        if not events:
            return 0
        endpoints: dict[str, list[tuple[str, list[str]]]] = {}
        for ep_id, team_id, types in await s.execute(
                endpoints_sql, {"teams": sorted({e.team_id for e in events})}):
            endpoints.setdefault(team_id, []).append((ep_id, types))
        # A delivery behind an unfinished one of the same subject and endpoint starts
        # as ``waiting`` (out of the claim scan) and is promoted when that one finishes.
        subjects = {e.subject_id for e in events if e.subject_id}
        # (endpoint, subject) -> the earliest unfinished delivery's event seq
        busy: dict[tuple[str, str | None], int] = {}
        if subjects and endpoints:
            # PostgreSQL: only the pending or sending deliveries this transaction could
            # share-lock count. Whoever records such a delivery's result then waits for
            # this commit, so its promotion sees the successor written here. One locked by
            # another sender (its result being recorded, or being claimed) is not waited
            # for: the successor starts ``pending`` instead, which the claim's own order
            # check holds back (docs/decisions/0049-successor-promotion-across-senders.md).
            for ep, subj, seq in await s.execute(busy_sql, {"subjects": sorted(subjects)}):
                busy[(ep, subj)] = min(busy.get((ep, subj), seq), seq)
        targets = {e.id: [ep for ep, types in endpoints.get(e.team_id, ())
                          if matches(types, e.type)] for e in events}
        wanted = [event_id for event_id, eps in targets.items() if eps]
        payloads: dict[str, Any] = dict(list(await s.execute(
            payloads_sql, {"ids": wanted}))) if wanted else {}
        rows: list[dict[str, Any]] = []
        for e in events:
            body: str | None = None
            for ep_id in targets[e.id]:
                body = body or event_body(e.id, e.type, e.created_at,
                                          payloads.get(e.id) or {})
                key = (ep_id, e.subject_id)
                waiting = e.subject_id is not None and busy.get(key, 1 << 62) < (e.seq or 0)
                if e.subject_id is not None:
                    busy[key] = min(busy.get(key, 1 << 62), e.seq or 0)
                rows.append({
                    "id": ids.new_id("whd"), "team_id": e.team_id, "endpoint_id": ep_id,
                    "event_id": e.id, "event_type": e.type, "subject_id": e.subject_id,
                    "event_seq": e.seq or 0, "event_created_at": e.created_at,
                    "payload": body, "status": "waiting" if waiting else "pending",
                    "attempts": 0, "next_attempt_at": None if waiting else now,
                    "attempt_log": [], "created_at": now, "updated_at": now,
                })
        if rows:
            await s.execute(insert(WebhookDelivery), rows)
        await s.execute(done_sql, {"ids": [e.id for e in events], "now": now})
        return len(events)

    @cached_property
    def _dispatch_sql(self) -> tuple[Any, Any, Any, Any, Any]:
        """The fan-out's statements, built once."""
        O, D, E = OutboxEvent, WebhookDelivery, WebhookEndpoint
        # Columns only: the payloads are read for the events an endpoint wants (most
        # teams have none, and most events match no endpoint's filter).
        events = (select(O.id, O.team_id, O.type, O.subject_id, O.seq, O.created_at)
                  .where(O.dispatched_at.is_(None))
                  .order_by(O.seq).limit(bindparam("limit", type_=Integer)))
        if not self.db.is_sqlite:
            events = events.with_for_update(skip_locked=True)
        endpoints = select(E.id, E.team_id, E.events).where(
            E.team_id.in_(bindparam("teams", expanding=True)), E.enabled.is_(True))
        subjects = D.subject_id.in_(bindparam("subjects", expanding=True))
        if self.db.is_sqlite:  # one writer: nothing changes under the fan-out
            busy = (select(D.endpoint_id, D.subject_id, func.min(D.event_seq))
                    .where(subjects, D.status.in_(UNFINISHED))
                    .group_by(D.endpoint_id, D.subject_id))
        else:
            busy = (select(D.endpoint_id, D.subject_id, D.event_seq)
                    .where(subjects, D.status.in_(("pending", "sending")))
                    .with_for_update(read=True, skip_locked=True))
        payloads = select(O.id, O.data).where(O.id.in_(bindparam("ids", expanding=True)))
        done = (update(O).where(O.id.in_(bindparam("ids", expanding=True)))
                .values(dispatched_at=bindparam("now", type_=O.dispatched_at.type))
                .execution_options(synchronize_session=False))
        return events, endpoints, busy, payloads, done

    # ------------------------------------------------------------ 2. claim

    async def claim(self, now: datetime, limit: int) -> list[Job]:
        return await self.record_and_claim([], now, limit)

    async def record(self, results: Iterable[Result]) -> None:
        await self.record_and_claim(list(results), self.clock.now(), 0)

    async def record_and_claim(self, results: list[Result], now: datetime, limit: int,
                               skip: set[str] | None = None) -> list[Job]:
        """Apply finished attempts and claim up to ``limit`` due deliveries (none of the
        endpoints in ``skip``), in one transaction (an idle pass takes no write lock)."""
        return (await self._step(now, dispatch=False, results=results, limit=limit,
                                 skip=skip or set(), look=True))[1]

    async def _claim(self, s: AsyncSession, now: datetime, limit: int,
                     skip: set[str] | None = None) -> list[Job]:
        select_due, take = self._claim_sql
        rows = list(await s.execute(select_due, {"now": now, "limit": limit,
                                                 "skip": sorted(skip or ())}))
        if rows:
            await s.execute(take, {"ids": [r.id for r in rows], "owner": self.worker_id,
                                   "until": now + self.lease, "now": now})
        return [Job(r.id, r.endpoint_id, r.url, r.secret_encrypted, r.payload, r.event_id,
                    r.event_type, r.attempts + 1) for r in rows]

    @cached_property
    def _claim_sql(self) -> tuple[Any, Any]:
        """The claim's SELECT and UPDATE, built once (their parameters are bound)."""
        D = WebhookDelivery
        now = bindparam("now", type_=D.next_attempt_at.type)
        due = and_(D.status.in_(("pending", "sending")), D.next_attempt_at <= now)
        earlier = aliased(WebhookDelivery, name="earlier")
        earlier_pending = exists().where(
            earlier.endpoint_id == D.endpoint_id, earlier.subject_id == D.subject_id,
            earlier.event_seq < D.event_seq, earlier.status.in_(UNFINISHED))
        earlier_undispatched = exists().where(
            OutboxEvent.subject_id == D.subject_id, OutboxEvent.dispatched_at.is_(None),
            OutboxEvent.seq < D.event_seq)
        stmt = (
            select(D.id, D.endpoint_id, D.payload, D.event_id, D.event_type, D.attempts,
                   WebhookEndpoint.url, WebhookEndpoint.secret_encrypted)
            .join(WebhookEndpoint, WebhookEndpoint.id == D.endpoint_id)
            .where(due,
                   or_(WebhookEndpoint.enabled.is_(True), D.event_type == TEST_EVENT),
                   or_(D.subject_id.is_(None), and_(~earlier_pending, ~earlier_undispatched)),
                   D.endpoint_id.not_in(bindparam("skip", expanding=True)))
            .order_by(D.next_attempt_at, D.event_seq, D.id)
            .limit(bindparam("limit", type_=Integer))
        )
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True, of=D)
        take = (update(D).where(D.id.in_(bindparam("ids", expanding=True)))
                .values(status="sending", lease_owner=bindparam("owner"),
                        next_attempt_at=bindparam("until", type_=D.next_attempt_at.type),
                        attempts=D.attempts + 1,
                        updated_at=bindparam("now", type_=D.updated_at.type))
                .execution_options(synchronize_session=False))
        return stmt, take

    # ------------------------------------------------------------ 3. send

    async def send(self, job: Job) -> Result:
        """One attempt, when the endpoint has a free lane (``webhook_endpoint_concurrency``);
        the timeout counts from there."""
        lane = self._lanes.get(job.endpoint_id)
        if lane is None:
            lane = self._lanes[job.endpoint_id] = asyncio.Semaphore(self.per_endpoint)
        async with lane:
            return await self._attempt(job)

    async def _attempt(self, job: Job) -> Result:
        start = time.perf_counter()
        status: int | None = None
        error: str | None = None
        snippet: str | None = None
        outcome = "network"
        try:
            body = job.payload.encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: signature_header(self._secret(job.secret_encrypted),
                                                   int(time.time()), body),
                "Callfleet-Event-Id": job.event_id,
                "Callfleet-Event-Type": job.event_type,
                "Callfleet-Delivery-Id": job.delivery_id,
                "Callfleet-Delivery-Attempt": str(job.attempt),
            }
            async with asyncio.timeout(self.timeout):
                async with self.client.stream("POST", job.url, content=body,
                                              headers=headers) as r:
                    status = r.status_code
                    raw = b""
                    async for chunk in r.aiter_bytes():
                        raw += chunk
                        if len(raw) >= SNIPPET_BYTES:
                            break
                    snippet = raw[:SNIPPET_BYTES].decode("utf-8", errors="replace") or None
            outcome = f"{status // 100}xx"
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timed out after {self.timeout:g} s"
            outcome = "timeout"
        except SecretKeyError as exc:
            error = str(exc)
            outcome = "config"
        except OutboundURLRejected as exc:
            error = f"refused by the outbound policy: {exc}"[:300]
            outcome = "refused"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        except Exception as exc:  # noqa: BLE001 - one bad delivery never stops the sender
            error = f"{type(exc).__name__}: {exc}"[:300]
        metrics.ATTEMPTS.labels(outcome).inc()
        return Result(job.delivery_id, job.attempt, self.clock.now(), status, error,
                      int((time.perf_counter() - start) * 1000), snippet)

    # ------------------------------------------------------------ 4. record

    async def flush(self) -> int:
        """Write the results gathered so far in one transaction; returns how many."""
        if not self._results:
            return 0
        results, self._results = self._results, []
        try:
            await self.record(results)
        except Exception:
            self._results = results + self._results  # keep them for the next pass
            raise
        return len(results)

    async def _apply(self, s: AsyncSession, results: list[Result]) -> None:
        """Write a batch of results: one read of the rows (locked on PostgreSQL), then one
        executemany for the rows this worker still leases and one for the late results
        of lost leases (only logged)."""
        read, write, write_log = self._record_sql
        rows = {r.id: dict(r._mapping) for r in await s.execute(
            read, {"ids": sorted({r.delivery_id for r in results})})}
        changed: dict[str, dict[str, Any]] = {}
        logged: dict[str, dict[str, Any]] = {}
        finished: set[str] = set()
        for r in results:
            d = rows.get(r.delivery_id)
            if d is None:
                continue  # the endpoint was deleted meanwhile
            entry = {"attempt": r.attempt, "at": iso(r.at), "status_code": r.status_code,
                     "error": r.error, "duration_ms": r.duration_ms, "response": r.response}
            d["attempt_log"] = [*(d["attempt_log"] or []), entry][-ATTEMPT_LOG_MAX:]
            if d["status"] != "sending" or d["lease_owner"] != self.worker_id:
                # Our lease ran out and another sender (or a manual retry) took over:
                # the attempt is logged, the state is theirs.
                if d["id"] not in changed:
                    logged[d["id"]] = {"did": d["id"], "log": d["attempt_log"],
                                       "at": r.at}
                else:
                    changed[d["id"]].update(log=d["attempt_log"], at=r.at)
                continue
            row = {"did": d["id"], "log": d["attempt_log"], "at": r.at, "code": r.status_code,
                   "owner": None, "error": None, "delivered": None, "next": None}
            d["lease_owner"] = None
            if r.ok:
                d["status"] = row["status"] = "delivered"
                row["delivered"] = r.at
                metrics.DELIVERIES.labels("delivered").inc()
                metrics.LAG.observe(max(0.0, (r.at - d["event_created_at"]).total_seconds()))
            else:
                row["error"] = r.error
                nxt = self.policy.next_attempt_at(d["created_at"], r.at, d["attempts"],
                                                  self._rng.random())
                if nxt is None:
                    d["status"] = row["status"] = "failed"
                    metrics.DELIVERIES.labels("failed").inc()
                    log.warning("webhook_delivery_failed", delivery_id=d["id"],
                                webhook_id=d["endpoint_id"], event_type=d["event_type"],
                                attempts=d["attempts"], status_code=r.status_code,
                                error=r.error)
                else:
                    d["status"] = row["status"] = "pending"
                    row["next"] = nxt
                    metrics.DELIVERIES.labels("retry").inc()
                    log.info("webhook_attempt_failed", delivery_id=d["id"],
                             webhook_id=d["endpoint_id"], event_type=d["event_type"],
                             attempt=d["attempts"], status_code=r.status_code,
                             error=r.error, next_attempt_at=iso(nxt))
            logged.pop(d["id"], None)
            changed[d["id"]] = row
            if d["subject_id"] is not None and d["status"] in ("delivered", "failed"):
                finished.add(d["subject_id"])
        if changed:
            await s.execute(write, list(changed.values()))
        if logged:
            await s.execute(write_log, list(logged.values()))
        if finished:
            await self._promote(s, finished, min(r.at for r in results))

    @cached_property
    def _record_sql(self) -> tuple[Any, Any, Any]:
        """The results' read and writes, built once."""
        T = WebhookDelivery.__table__
        c = T.c
        read = (select(c.id, c.status, c.lease_owner, c.attempts, c.attempt_log,
                       c.created_at, c.event_created_at, c.subject_id, c.endpoint_id,
                       c.event_type)
                .where(c.id.in_(bindparam("ids", expanding=True))))
        if not self.db.is_sqlite:
            read = read.order_by(c.id).with_for_update()
        when = bindparam("at", type_=c.updated_at.type)
        log_ = bindparam("log", type_=c.attempt_log.type)
        write = (update(T).where(c.id == bindparam("did"))
                 .values(status=bindparam("status"), lease_owner=bindparam("owner"),
                         last_status_code=bindparam("code"), last_error=bindparam("error"),
                         delivered_at=bindparam("delivered", type_=c.delivered_at.type),
                         next_attempt_at=bindparam("next", type_=c.next_attempt_at.type),
                         attempt_log=log_, updated_at=when))
        write_log = (update(T).where(c.id == bindparam("did"))
                     .values(attempt_log=log_, updated_at=when))
        return read, write, write_log

    async def _promote(self, s: AsyncSession, subjects: set[str], now: datetime) -> int:
        """Make the first ``waiting`` delivery of each (endpoint, subject) ``pending`` when
        nothing earlier of that pair is unfinished (set-based: one statement)."""
        res = await s.execute(PROMOTE, {"subjects": sorted(subjects), "now": now})
        return int(res.rowcount or 0)  # type: ignore[attr-defined]

    async def unstick(self, now: datetime) -> int:
        """Safety net for a race of two PostgreSQL workers (a delivery inserted as
        ``waiting`` while the one it waited for finished): promote every waiting delivery
        with nothing unfinished before it."""
        subjects = select(WebhookDelivery.subject_id).where(
            WebhookDelivery.status == "waiting").distinct().limit(1000)
        async with self.db.session(write=False) as s:
            found = {x for x in await s.scalars(subjects) if x}
        if not found:
            return 0
        async with self.db.session() as s:
            n = await self._promote(s, found, now)
            await s.commit()
        return n

    # ------------------------------------------------------------ retention and metrics

    async def prune(self, now: datetime) -> int:
        """Delete dispatched events and finished (delivered or failed) deliveries older than
        ``webhook_retention_days``, in bounded batches."""
        cutoff = now - timedelta(days=self.settings.webhook_retention_days)
        removed = 0
        for _ in range(20):
            async with self.db.session() as s:
                old_events = (select(OutboxEvent.id)
                              .where(OutboxEvent.dispatched_at.is_not(None),
                                     OutboxEvent.dispatched_at < cutoff).limit(PRUNE_BATCH))
                a = await s.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(old_events))
                                    .execution_options(synchronize_session=False))
                old = (select(WebhookDelivery.id)
                       .where(WebhookDelivery.status.in_(("delivered", "failed")),
                              WebhookDelivery.updated_at < cutoff).limit(PRUNE_BATCH))
                b = await s.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(old))
                                    .execution_options(synchronize_session=False))
                await s.commit()
            n = int(a.rowcount or 0) + int(b.rowcount or 0)  # type: ignore[attr-defined]
            removed += n
            if n < PRUNE_BATCH:
                break
        if removed:
            log.info("webhook_pruned", rows=removed)
        return removed

    async def update_gauges(self) -> tuple[int, int]:
        async with self.db.session(write=False) as s:
            events = int(await s.scalar(select(func.count()).select_from(OutboxEvent)
                                        .where(OutboxEvent.dispatched_at.is_(None))) or 0)
            deliveries = int(await s.scalar(
                select(func.count()).select_from(WebhookDelivery)
                .where(WebhookDelivery.status.in_(UNFINISHED))) or 0)
        metrics.BACKLOG.labels("events").set(events)
        metrics.BACKLOG.labels("deliveries").set(deliveries)
        return events, deliveries
