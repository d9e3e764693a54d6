"""The system clock, optionally running faster than real time (simulated carrier only).

With ``CALLFLEET_TIME_SCALE=S`` every process maps real time to simulated time as
``sim = sim_anchor + (real - real_anchor) * S``. The anchor lives in the database
(``clock_anchor``), so the API, all workers and the simulated network agree on "now".
Call durations, retry delays, call windows, legal hours and scheduled starts all read this
clock; only sleeps are converted back to real seconds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, UTCDateTime
from callfleet.db.session import Database


class ClockAnchor(Base):
    """Shared simulation clock: every process maps real time to the same simulated time."""

    __tablename__ = "clock_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scale: Mapped[float] = mapped_column(default=1.0)
    real_anchor: Mapped[datetime] = mapped_column(UTCDateTime)
    sim_anchor: Mapped[datetime] = mapped_column(UTCDateTime)


def real_now() -> datetime:
    return datetime.now(UTC)


class Clock:
    def __init__(
        self, scale: float = 1.0, real_anchor: datetime | None = None,
        sim_anchor: datetime | None = None,
    ) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale
        self.real_anchor = real_anchor or real_now()
        self.sim_anchor = sim_anchor or self.real_anchor

    def now(self) -> datetime:
        if self.scale == 1.0 and self.real_anchor == self.sim_anchor:
            return real_now()
        return self.sim_anchor + (real_now() - self.real_anchor) * self.scale

    def real_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds / self.scale)

    def sim_delta(self, real_seconds: float) -> timedelta:
        return timedelta(seconds=real_seconds * self.scale)

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(sim_seconds))


class FixedClock(Clock):
    """A clock that moves only when told to: for tests (time is injected, never slept on)."""

    def __init__(self, at: datetime) -> None:
        super().__init__(1.0)
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(0)


async def shared_clock(db: Database, scale: float, *, start: datetime | None = None) -> Clock:
    """The clock every process of this database shares; re-anchored when the scale changes
    (continuing from the current simulated time, so time never jumps backwards while
    simulating). ``start`` (the demo) anchors simulated time at that moment instead."""
    if scale == 1.0 and start is None:
        # Leaving simulation: back to real time (a simulated future is not kept).
        async with db.session() as s:
            row = await s.get(ClockAnchor, 1)
            if row is not None:
                await s.delete(row)
                await s.commit()
        return Clock(1.0)
    async with db.session() as s:
        row = await s.get(ClockAnchor, 1)
        if start is None and row is not None and row.scale == scale:
            return Clock(scale, row.real_anchor, row.sim_anchor)
        now = real_now()
        if start is not None:
            sim_now = start
        else:
            sim_now = (Clock(row.scale, row.real_anchor, row.sim_anchor).now()
                       if row is not None else now)
        if row is None:
            row = ClockAnchor(id=1, scale=scale, real_anchor=now, sim_anchor=sim_now)
            s.add(row)
        else:
            row.scale, row.real_anchor, row.sim_anchor = scale, now, sim_now
        await s.commit()
        return Clock(scale, now, sim_now)


async def set_scale(db: Database, clock: Clock, scale: float) -> None:
    """Change a running simulation's speed from now on (every loop holding ``clock`` follows
    at once; other processes at their next start)."""
    if scale <= 0:
        raise ValueError("time scale must be positive")
    sim_now, now = clock.now(), real_now()
    clock.scale, clock.real_anchor, clock.sim_anchor = scale, now, sim_now
    async with db.session() as s:
        row = await s.get(ClockAnchor, 1)
        if row is None:
            s.add(ClockAnchor(id=1, scale=scale, real_anchor=now, sim_anchor=sim_now))
        else:
            row.scale, row.real_anchor, row.sim_anchor = scale, now, sim_now
        await s.commit()
