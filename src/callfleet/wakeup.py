"""Waking the background loops when work appears, instead of polling for it.

Every loop (dialer, webhook sender, conversations, analysis) works on rows of its own tables.
When a pass finds nothing to do, the loop waits longer and longer (``IdleWait``: from its
tick up to ``CALLFLEET_IDLE_MAX_SECONDS``), but never past the next moment it knows work is
due (a retry, a scheduled start, a call window opening), and it wakes at once when work is
created:

* the transaction that creates work calls :func:`notify` with the loop's topic
  (``dialer``, ``webhooks``, ``conversation``, ``analysis``). Nothing happens until it
  commits; a rollback forgets it;
* at commit, the loops of this process that wait on the topic wake (an in-process signal:
  enough on SQLite, where one process does all the work);
* on PostgreSQL the same transaction also sends ``NOTIFY callfleet_wakeup`` (delivered only
  if it commits, to every process), and each worker process keeps one ``LISTEN`` connection
  (:func:`listening`, run by ``worker.run_background``) that wakes its own loops.

While a PostgreSQL process has no working ``LISTEN`` connection (not started, or lost and
reconnecting), its loops do not back off: they poll at their tick, as they did before. A
lost wake-up therefore costs at most one back-off wait (a few seconds), never the work.
docs/decisions/0020-idle-loops.md.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any, Self

import structlog
from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from callfleet.db.session import Database

log = structlog.get_logger("callfleet.wakeup")

TOPICS = frozenset(("dialer", "webhooks", "conversation", "analysis"))
CHANNEL = "callfleet_wakeup"
HEALTH_CHECK_SECONDS = 30.0  # how often the LISTEN connection is checked
_KEY = "callfleet.wakeup"
# Identifies this process in NOTIFY payloads: its own loops were already woken at commit.
_PROCESS = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class Hub:
    """The waiting loops of one database in this process, by topic."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {t: set() for t in TOPICS}
        self.listeners = 0  # working LISTEN connections (PostgreSQL)

    def wake(self, topics: Iterable[str]) -> None:
        for topic in topics:
            for waiter in self._waiters.get(topic, ()):
                waiter.set()

    def wake_all(self) -> None:
        self.wake(TOPICS)

    def add(self, topic: str, waiter: asyncio.Event) -> None:
        self._waiters[topic].add(waiter)

    def discard(self, topic: str, waiter: asyncio.Event) -> None:
        self._waiters[topic].discard(waiter)


_HUBS: dict[str, Hub] = {}
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, Hub] = weakref.WeakKeyDictionary()


def _hub_for_url(url: Any) -> Hub:
    key = make_url(url).render_as_string(hide_password=True)
    hub = _HUBS.get(key)
    if hub is None:
        hub = _HUBS[key] = Hub()
    return hub


def hub(db: Database) -> Hub:
    return _hub_for_url(db.url)


def _hub_for_engine(engine: Engine) -> Hub:
    found = _BY_ENGINE.get(engine)
    if found is None:
        found = _BY_ENGINE[engine] = _hub_for_url(engine.url)
    return found


# ------------------------------------------------------------------ notifying


def notify(session: AsyncSession | Session, *topics: str) -> None:
    """Wake the loops of ``topics`` when the session's transaction commits (cheap: called
    once per event written)."""
    info = session.info
    pending: set[str] | None = info.get(_KEY)
    if pending is None:
        assert all(t in TOPICS for t in topics), topics
        sync = session.sync_session if isinstance(session, AsyncSession) else session
        if not sync.in_transaction():
            sync.begin()  # so that a rollback or close before any query drops it
        info[_KEY] = set(topics)
    elif not pending.issuperset(topics):
        assert all(t in TOPICS for t in topics), topics
        pending.update(topics)


@event.listens_for(Session, "before_commit")
def _send_notify(session: Session) -> None:
    topics: set[str] | None = session.info.get(_KEY)
    if topics and session.bind is not None and session.bind.dialect.name == "postgresql":
        session.execute(_NOTIFY, {"channel": CHANNEL,
                                  "payload": " ".join(sorted(topics)) + "|" + _PROCESS})


@event.listens_for(Session, "after_commit")
def _wake_local(session: Session) -> None:
    topics: set[str] | None = session.info.pop(_KEY, None)
    if topics and isinstance(session.bind, Engine):
        _hub_for_engine(session.bind).wake(topics)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous: SessionTransaction) -> None:
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_unfinished(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_KEY, None)  # closed without a commit


# ------------------------------------------------------------------ waiting


class IdleWait:
    """One loop's waits between passes.

    ``arm()`` before each pass starts listening for new work (a wake-up arriving during the
    pass is kept); after a pass that did work, ``busy()``; after an idle pass,
    ``await idle(stop, due_in)`` waits the current back-off (doubling from ``base`` up to
    ``cap`` with each idle pass, ``base`` again after a busy one) or until ``due_in`` real
    seconds (the loop's next known due time), whichever is first, and returns at once on
    ``stop`` or a wake-up of its topic."""

    def __init__(self, db: Database, topic: str, *, base: float, cap: float) -> None:
        if topic not in TOPICS:
            raise ValueError(f"unknown topic {topic!r}")
        self.topic = topic
        self.base = max(0.001, base)
        self.cap = max(self.base, cap)
        self.delay = self.base
        self._hub = hub(db)
        self._sqlite = db.is_sqlite
        self.woken = asyncio.Event()
        self._hub.add(topic, self.woken)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._hub.discard(self.topic, self.woken)

    @property
    def reliable(self) -> bool:
        """Whether every wake-up reaches this process (else the loop polls at ``base``)."""
        return self._sqlite or self._hub.listeners > 0

    def arm(self) -> bool:
        """Start a pass: returns whether a wake-up arrived since the last ``arm``."""
        woken = self.woken.is_set()
        self.woken.clear()
        return woken

    def busy(self) -> None:
        self.delay = self.base

    def next_delay(self, due_in: float | None = None) -> float:
        """The wait after an idle pass (and the back-off grows)."""
        delay = self.delay if self.reliable else self.base
        self.delay = min(self.delay * 2, self.cap)
        if due_in is not None:
            # Due now but not taken (no capacity, another worker has it): poll at the tick.
            delay = min(delay, due_in if due_in > 0 else self.base)
        return max(0.001, delay)

    async def idle(self, stop: asyncio.Event,
                   due: Callable[[], Awaitable[float | None]] | None = None) -> None:
        """Wait after an idle pass. ``due`` tells the real seconds until the loop's next
        known due time."""
        due_in = None
        if due is not None:
            try:
                due_in = await due()
            except Exception:  # an unknown due time: wait the tick
                log.exception("wakeup_due_time_failed", topic=self.topic)
                due_in = 0.0
        await self.sleep(stop, self.next_delay(due_in), wake=True)

    async def sleep(self, stop: asyncio.Event, seconds: float, *, wake: bool = False,
                    also: asyncio.Event | None = None) -> None:
        """Wait ``seconds``, or less if ``stop`` is set, or (``wake``) a wake-up arrives,
        or ``also`` is set."""
        if stop.is_set() or (wake and self.woken.is_set()) or (also and also.is_set()):
            return
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self.woken.wait()))
        if also is not None:
            waiters.append(asyncio.ensure_future(also.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()


def due_in_seconds(clock: Any, due: datetime | None) -> float | None:
    """Real seconds from now until ``due`` (a time of ``clock``; None: nothing is due)."""
    if due is None:
        return None
    return float(clock.real_seconds((due - clock.now()).total_seconds()))


# ------------------------------------------------------------------ listening


@asynccontextmanager
async def listening(db: Database) -> AsyncIterator[None]:
    """Keep a ``LISTEN`` connection open while the block runs (PostgreSQL; nothing on
    SQLite), reconnecting when it is lost."""
    if db.is_sqlite:
        yield
        return
    task = asyncio.create_task(_listen(db, hub(db)))
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def _listen(db: Database, hub: Hub) -> None:
    retry = 1.0

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        topics, _, sender = payload.partition("|")
        if sender != _PROCESS:
            hub.wake(t for t in topics.split() if t in TOPICS)

    while True:
        try:
            async with db.write_engine.connect() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                lost = asyncio.Event()
                raw.add_termination_listener(lambda _c, lost=lost: lost.set())
                try:
                    await raw.add_listener(CHANNEL, on_notify)
                    hub.listeners += 1
                    try:
                        log.info("wakeup_listening", channel=CHANNEL)
                        hub.wake_all()  # whatever was created while nobody listened
                        retry = 1.0
                        while not lost.is_set():
                            try:
                                await asyncio.wait_for(lost.wait(), HEALTH_CHECK_SECONDS)
                            except TimeoutError:
                                await asyncio.wait_for(raw.fetchval("SELECT 1"), 10)
                    finally:
                        hub.listeners -= 1
                finally:
                    # A LISTENing connection never goes back to the pool.
                    await conn.invalidate()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reconnect whatever went wrong
            log.warning("wakeup_listener_lost", error=f"{type(exc).__name__}: {exc}"[:300],
                        retry_seconds=retry)
        await asyncio.sleep(retry)
        retry = min(retry * 2, 30.0)
