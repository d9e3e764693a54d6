"""The webhook sender: fans outbox events out to endpoints and delivers them, at least once.

Each pass (``run`` loops; tests call ``tick``):

1. **dispatch** — claim undispatched outbox events in commit order (``seq``; ``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL, so several workers share the work; SQLite has one writer), insert
   one delivery row per enabled endpoint whose ``events`` match, and mark the events
   dispatched, in one transaction. Events of teams without endpoints are marked at once.
2. **claim** — take due deliveries (``pending`` and due, or ``sending`` whose lease ran out)
   up to the free in-flight slots: status ``sending``, ``lease_owner`` = this worker,
   ``next_attempt_at`` = lease expiry. A delivery is not taken while an earlier event of the
   same subject (call, campaign, contact) is still pending for the same endpoint, or not yet
   dispatched: per-subject order (docs/webhooks.md).
3. **send** — signed POSTs through one ``httpx.AsyncClient``, at most
   ``webhook_max_in_flight`` at once, each bounded by ``webhook_timeout_seconds`` in total.
4. **record** — results are written in batches: 2xx = ``delivered``; anything else schedules
   the next attempt (webhooks/retry.py) or, after the retry window, ``failed``. A result is
   applied only by the lease owner; a sender killed mid-flight leaves ``sending`` rows that
   any sender retries once their lease expires (at-least-once; receivers dedupe on the id).

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import and_, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callfleet import __version__, ids
from callfleet.clock import Clock
from callfleet.config import Settings
from callfleet.db.base import iso
from callfleet.db.session import Database
from callfleet.outbound import OutboundURLRejected, outbound_client
from callfleet.webhooks import metrics
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
        self._transport = transport
        self._box = box
        self._rng = rng or random.Random()
        self._client: httpx.AsyncClient | None = None
        self._results: list[Result] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._last_prune = 0.0
        self._last_dispatch = 0.0
        self._last_gauges = 0.0

    # ------------------------------------------------------------ plumbing

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            self._box = secret_box(self.settings)
        return self._box

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Endpoint URLs are tenant-set: every connection passes the outbound policy
            # (no redirects; the address actually resolved is checked: callfleet.outbound).
            self._client = outbound_client(
                self.settings, transport=self._transport, follow_redirects=False,
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=self.max_in_flight,
                                    max_keepalive_connections=self.max_in_flight),
            )
        return self._client

    @property
    def lease(self) -> timedelta:
        """Longer than one attempt can take, in simulated time."""
        real = max(self.settings.webhook_lease_seconds, 2 * self.timeout)
        return self.clock.sim_delta(real)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        log.info("webhook_sender_started", worker=self.worker_id)
        try:
            while not stop.is_set():
                try:
                    busy = await self._pass()
                except Exception:
                    log.exception("webhook_pass_failed", worker=self.worker_id)
                    busy = 0
                if busy:
                    await asyncio.sleep(0)
                    continue
                self._wake.clear()
                waiters = [asyncio.ensure_future(stop.wait()),
                           asyncio.ensure_future(self._wake.wait())]
                await asyncio.wait(waiters, timeout=self.settings.webhook_tick_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
        finally:
            if self._inflight:  # let attempts under way finish (each is bounded)
                await asyncio.wait(self._inflight, timeout=self.timeout + 1)
            try:
                await self.flush()
            except Exception:
                log.exception("webhook_flush_failed", worker=self.worker_id)
            await self.aclose()

    async def _pass(self) -> int:
        work = 0
        loop_time = asyncio.get_running_loop().time()
        # Fan-out is checked once per tick (at once again after a full batch): a pass runs
        # every time a request finishes, and each check is a statement.
        if loop_time - self._last_dispatch >= self.settings.webhook_tick_seconds:
            n = await self.dispatch(self.clock.now())
            self._last_dispatch = 0.0 if n >= self.settings.webhook_batch else loop_time
            work += n
        free = self.max_in_flight - len(self._inflight)
        results, self._results = self._results, []
        try:
            jobs = await self.record_and_claim(results, self.clock.now(), free)
        except Exception:
            self._results = results + self._results  # keep them for the next pass
            raise
        for job in jobs:
            task = asyncio.create_task(self._send_and_keep(job))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        await self.maintenance()
        return work + len(results) + len(jobs)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _send_and_keep(self, job: Job) -> None:
        result = await self.send(job)
        # Appended after the await: ``flush`` swaps the list while the request is out.
        self._results.append(result)

    async def tick(self) -> int:
        """One complete pass, waiting for its sends: dispatch, claim, send, record."""
        work = await self.dispatch(self.clock.now())
        jobs = await self.claim(self.clock.now(), self.max_in_flight)
        self._results.extend(await asyncio.gather(*(self.send(j) for j in jobs)))
        await self.flush()
        return work + len(jobs)

    async def maintenance(self, *, force: bool = False) -> None:
        loop_time = asyncio.get_running_loop().time()
        if force or loop_time - self._last_gauges >= 5.0:
            self._last_gauges = loop_time
            await self.update_gauges()
            await self.unstick(self.clock.now())
        if force or loop_time - self._last_prune >= 60.0:
            self._last_prune = loop_time
            await self.prune(self.clock.now())

    # ------------------------------------------------------------ 1. dispatch

    async def dispatch(self, now: datetime) -> int:
        """Fan out up to ``webhook_batch`` outbox events; returns how many were taken."""
        pending = select(OutboxEvent.id).where(OutboxEvent.dispatched_at.is_(None)).limit(1)
        async with self.db.session(write=False) as s:
            if await s.scalar(pending) is None:
                return 0  # idle passes take no write lock
        async with self.db.session() as s:
            # Columns only: the payloads are read below for the events an endpoint wants
            # (most teams have none, and most events match no endpoint's filter).
            O = OutboxEvent
            stmt = (select(O.id, O.team_id, O.type, O.subject_id, O.seq, O.created_at)
                    .where(O.dispatched_at.is_(None))
                    .order_by(O.seq).limit(max(1, self.settings.webhook_batch)))
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            events = list(await s.execute(stmt))
            if not events:
                return 0
            endpoints: dict[str, list[tuple[str, list[str]]]] = {}
            for ep_id, team_id, types in await s.execute(
                select(WebhookEndpoint.id, WebhookEndpoint.team_id, WebhookEndpoint.events)
                .where(WebhookEndpoint.team_id.in_({e.team_id for e in events}),
                       WebhookEndpoint.enabled.is_(True))
            ):
                endpoints.setdefault(team_id, []).append((ep_id, types))
            # A delivery behind an unfinished one of the same subject and endpoint starts
            # as ``waiting`` (out of the claim scan) and is promoted when that one finishes.
            subjects = {e.subject_id for e in events if e.subject_id}
            # (endpoint, subject) -> the earliest unfinished delivery's event seq
            busy: dict[tuple[str, str | None], int] = {}
            if subjects and endpoints:
                busy = {(ep, subj): seq for ep, subj, seq in await s.execute(
                    select(WebhookDelivery.endpoint_id, WebhookDelivery.subject_id,
                           func.min(WebhookDelivery.event_seq))
                    .where(WebhookDelivery.subject_id.in_(subjects),
                           WebhookDelivery.status.in_(UNFINISHED))
                    .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.subject_id))}
            targets = {e.id: [ep for ep, types in endpoints.get(e.team_id, ())
                              if matches(types, e.type)] for e in events}
            wanted = [event_id for event_id, eps in targets.items() if eps]
            payloads: dict[str, Any] = dict(list(await s.execute(
                select(O.id, O.data).where(O.id.in_(wanted))))) if wanted else {}
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
            await s.execute(
                update(OutboxEvent).where(OutboxEvent.id.in_([e.id for e in events]))
                .values(dispatched_at=now).execution_options(synchronize_session=False))
            await s.commit()
        return len(events)

    # ------------------------------------------------------------ 2. claim

    async def claim(self, now: datetime, limit: int) -> list[Job]:
        return await self.record_and_claim([], now, limit)

    async def record(self, results: Iterable[Result]) -> None:
        await self.record_and_claim(list(results), self.clock.now(), 0)

    async def record_and_claim(self, results: list[Result], now: datetime,
                               limit: int) -> list[Job]:
        """Apply finished attempts and claim up to ``limit`` due deliveries, in one
        transaction (an idle pass takes no write lock)."""
        if not results:
            if limit <= 0:
                return []
            due = and_(WebhookDelivery.status.in_(("pending", "sending")),
                       WebhookDelivery.next_attempt_at <= now)
            async with self.db.session(write=False) as s:
                if await s.scalar(select(WebhookDelivery.id).where(due).limit(1)) is None:
                    return []
        async with self.db.session() as s:
            if results:
                await self._apply(s, results)
            jobs = await self._claim(s, now, limit) if limit > 0 else []
            await s.commit()
        return jobs

    async def _claim(self, s: AsyncSession, now: datetime, limit: int) -> list[Job]:
        D = WebhookDelivery
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
                   or_(D.subject_id.is_(None), and_(~earlier_pending, ~earlier_undispatched)))
            .order_by(D.next_attempt_at, D.event_seq, D.id)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True, of=D)
        rows = list(await s.execute(stmt))
        if rows:
            await s.execute(
                update(D).where(D.id.in_([r.id for r in rows]))
                .values(status="sending", lease_owner=self.worker_id,
                        next_attempt_at=now + self.lease, attempts=D.attempts + 1,
                        updated_at=now)
                .execution_options(synchronize_session=False))
        return [Job(r.id, r.endpoint_id, r.url, r.secret_encrypted, r.payload, r.event_id,
                    r.event_type, r.attempts + 1) for r in rows]

    # ------------------------------------------------------------ 3. send

    async def send(self, job: Job) -> Result:
        start = time.perf_counter()
        status: int | None = None
        error: str | None = None
        snippet: str | None = None
        outcome = "network"
        try:
            secret = self.box.decrypt(job.secret_encrypted)
            body = job.payload.encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"callfleet/{__version__}",
                SIGNATURE_HEADER: signature_header(secret, int(time.time()), body),
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
        stmt = select(WebhookDelivery).where(
            WebhookDelivery.id.in_([r.delivery_id for r in results]))
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update()
        rows = {d.id: d for d in await s.scalars(stmt)}
        for r in results:
            d = rows.get(r.delivery_id)
            if d is None:
                continue  # the endpoint was deleted meanwhile
            entry = {"attempt": r.attempt, "at": iso(r.at), "status_code": r.status_code,
                     "error": r.error, "duration_ms": r.duration_ms,
                     "response": r.response}
            d.attempt_log = [*(d.attempt_log or []), entry][-ATTEMPT_LOG_MAX:]
            d.updated_at = r.at
            if d.status != "sending" or d.lease_owner != self.worker_id:
                # Our lease ran out and another sender (or a manual retry) took over:
                # the attempt is logged, the state is theirs.
                continue
            d.last_status_code = r.status_code
            d.lease_owner = None
            if r.ok:
                d.status = "delivered"
                d.delivered_at = r.at
                d.last_error = None
                d.next_attempt_at = None
                metrics.DELIVERIES.labels("delivered").inc()
                metrics.LAG.observe(max(0.0, (r.at - d.event_created_at).total_seconds()))
                continue
            d.last_error = r.error
            nxt = self.policy.next_attempt_at(d.created_at, r.at, d.attempts,
                                              self._rng.random())
            if nxt is None:
                d.status = "failed"
                d.next_attempt_at = None
                metrics.DELIVERIES.labels("failed").inc()
                log.warning("webhook_delivery_failed", delivery_id=d.id,
                            webhook_id=d.endpoint_id, event_type=d.event_type,
                            attempts=d.attempts, status_code=r.status_code, error=r.error)
            else:
                d.status = "pending"
                d.next_attempt_at = nxt
                metrics.DELIVERIES.labels("retry").inc()
                log.info("webhook_attempt_failed", delivery_id=d.id,
                         webhook_id=d.endpoint_id, event_type=d.event_type,
                         attempt=d.attempts, status_code=r.status_code, error=r.error,
                         next_attempt_at=iso(nxt))
        await s.flush()
        finished = [d for d in rows.values()
                    if d.subject_id is not None and d.status in ("delivered", "failed")]
        if finished:
            await self._promote(s, {d.subject_id for d in finished if d.subject_id},
                                min(r.at for r in results))

    async def _promote(self, s: AsyncSession, subjects: set[str], now: datetime) -> int:
        """Make the first ``waiting`` delivery of each (endpoint, subject) ``pending`` when
        nothing earlier of that pair is unfinished (set-based: one statement)."""
        D = WebhookDelivery
        earlier = aliased(WebhookDelivery, name="earlier")
        heads = (select(D.endpoint_id, D.subject_id, func.min(D.event_seq))
                 .where(D.status == "waiting", D.subject_id.in_(subjects))
                 .group_by(D.endpoint_id, D.subject_id))
        blocked = exists().where(
            earlier.endpoint_id == D.endpoint_id, earlier.subject_id == D.subject_id,
            earlier.event_seq < D.event_seq, earlier.status.in_(("pending", "sending")))
        res = await s.execute(
            update(D).where(D.status == "waiting",
                            tuple_(D.endpoint_id, D.subject_id, D.event_seq).in_(heads),
                            ~blocked)
            .values(status="pending", next_attempt_at=now, updated_at=now)
            .execution_options(synchronize_session=False))
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
