"""Voice slots: the dialer never places a call that no voice process can talk on.

Every voice process (``callfleet serve`` with the voice extra, ``callfleet voice``) keeps a
row in ``voice_processes``: its capacity (``CALLFLEET_VOICE_MAX_CALLS``), how many of its
slots are reserved, and a heartbeat lease. The dialer reserves a slot in the same
transaction that moves the enrollment to ``calling`` (``reserve``), and records the process
on the call (``calls.voice_process_id``); the call's end gives it back (``release``, batched
per transaction by ``dialer.outcomes.Settlement``). A process whose lease expired is no
longer offered, and its row (with the reservations on it) is swept by the next heartbeat
of any process. Only calls that will use live voice touch this table: the text simulation's
hot path runs no statement more (docs/decisions/0040).

Works on SQLite and PostgreSQL: one SELECT of the live processes with room (``FOR UPDATE``
on PostgreSQL), then one conditional ``UPDATE ... SET reserved = reserved + k WHERE
reserved + k <= capacity`` per process used.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from prometheus_client import Counter as Metric
from sqlalchemy import Boolean, Integer, String, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, UTCDateTime

LEASE_SECONDS = 30.0  # a process that has not beaten its heart for this long is gone
HEARTBEAT_SECONDS = 10.0

FULL = Metric("callfleet_voice_slots_full_total",
              "Calls the dialer left due because no voice process had a free slot")


class VoiceProcess(Base):
    """One voice process (not team data: the deployment's own machinery)."""

    __tablename__ = "voice_processes"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    host: Mapped[str] = mapped_column(String(200), default="")
    capacity: Mapped[int] = mapped_column(Integer, default=8)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _live(now: datetime):  # type: ignore[no-untyped-def]
    t = VoiceProcess.__table__.c
    return (t.lease_expires_at > now) & (t.draining.is_(False))


async def reserve(s: AsyncSession, n: int, now: datetime) -> list[str]:
    """Up to ``n`` voice slots, spread over the least loaded live processes; returns one
    process id per slot granted (fewer than ``n`` when the node is full)."""
    if n <= 0:
        return []
    t = VoiceProcess.__table__.c
    stmt = (select(t.id, t.capacity, t.reserved)
            .where(_live(now), t.reserved < t.capacity)
            .order_by((t.reserved * 1.0 / t.capacity).asc(), t.id))
    if s.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    rows = [(pid, cap - res) for pid, cap, res in await s.execute(stmt)]
    want: Counter[str] = Counter()
    left = n
    while left > 0 and rows:
        # One slot at a time to the process with the most room: a batch is spread evenly.
        rows.sort(key=lambda r: -(r[1] - want[r[0]]))
        pid, free = rows[0]
        if free - want[pid] <= 0:
            break
        want[pid] += 1
        left -= 1
    granted: list[str] = []
    for pid, k in sorted(want.items()):
        got = await s.execute(
            update(VoiceProcess.__table__)
            .where(t.id == pid, t.reserved + k <= t.capacity, _live(now))
            .values(reserved=t.reserved + k))
        if got.rowcount:  # type: ignore[attr-defined]
            granted.extend([pid] * k)
    return granted


async def release(s: AsyncSession, slots: Counter[str]) -> None:
    """Give back slots (process id -> how many); a swept process's are simply gone."""
    t = VoiceProcess.__table__.c
    floor = func.max if s.bind.dialect.name == "sqlite" else func.greatest
    for pid, k in sorted(slots.items()):
        await s.execute(update(VoiceProcess.__table__).where(t.id == pid)
                        .values(reserved=floor(t.reserved - k, 0)))


async def heartbeat(s: AsyncSession, pid: str, *, host: str, capacity: int, draining: bool,
                    now: datetime, lease: float = LEASE_SECONDS) -> None:
    """Register or renew this process's lease, and sweep processes whose lease expired."""
    t = VoiceProcess.__table__.c
    until = now + timedelta(seconds=lease)
    got = await s.execute(update(VoiceProcess.__table__).where(t.id == pid).values(
        capacity=capacity, draining=draining, heartbeat_at=now, lease_expires_at=until))
    if not got.rowcount:  # type: ignore[attr-defined]
        s.add(VoiceProcess(id=pid, host=host[:200], capacity=capacity, reserved=0,
                           draining=draining, started_at=now, heartbeat_at=now,
                           lease_expires_at=until))
    await s.execute(delete(VoiceProcess.__table__).where(t.lease_expires_at <= now))


async def leave(s: AsyncSession, pid: str) -> None:
    """A process that stops takes its row with it."""
    await s.execute(delete(VoiceProcess.__table__).where(VoiceProcess.__table__.c.id == pid))


async def capacity(s: AsyncSession, now: datetime) -> tuple[int, int]:
    """(capacity, reserved) of the live processes."""
    t = VoiceProcess.__table__.c
    row = (await s.execute(select(func.coalesce(func.sum(t.capacity), 0),
                                  func.coalesce(func.sum(t.reserved), 0))
                           .where(_live(now)))).one()
    return int(row[0]), int(row[1])
