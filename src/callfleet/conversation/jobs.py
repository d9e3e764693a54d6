"""Claiming, fencing and finishing ``call_jobs`` rows (see ``conversation.models``).

Claims are one conditional ``UPDATE ... RETURNING`` (both databases), the candidate rows
picked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers can poll side by
side. Every write a worker makes for a job starts with :func:`fence`/:func:`renew`, an UPDATE
that succeeds only while the worker still owns the job: the results and the done-mark are
therefore committed together or not at all, and a worker that lost its lease writes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.conversation.models import CallJob
from callfleet.db.session import Database
from callfleet.wakeup import due_in_seconds, notify


def add_job(session: AsyncSession, call_id: str, team_id: str, kind: str,
            at: datetime) -> None:
    """Queue work for a call in the caller's transaction."""
    session.add(CallJob(call_id=call_id, kind=kind, team_id=team_id, status="pending",
                        available_at=at, attempts=0, created_at=at))
    notify(session, kind)


def _due(kind: str, now: datetime):  # type: ignore[no-untyped-def]
    return and_(
        CallJob.kind == kind,
        or_(and_(CallJob.status == "pending", CallJob.available_at <= now),
            and_(CallJob.status == "running", CallJob.lease_expires_at < now)),
    )


async def claim(db: Database, kind: str, owner: str, now: datetime, lease: timedelta,
                limit: int) -> list[str]:
    """Take up to ``limit`` due jobs of ``kind``; returns their call ids."""
    if limit <= 0:
        return []
    async with db.session(write=False) as s:
        if await s.scalar(select(CallJob.call_id).where(_due(kind, now)).limit(1)) is None:
            return []  # idle passes take no write lock
    async with db.session() as s:
        due = (select(CallJob.call_id).where(_due(kind, now))
               .order_by(CallJob.available_at, CallJob.call_id).limit(limit))
        if not db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        claimed = list(await s.scalars(
            update(CallJob)
            .where(CallJob.kind == kind, CallJob.call_id.in_(due.scalar_subquery()),
                   _due(kind, now))
            .values(status="running", owner=owner, lease_expires_at=now + lease,
                    attempts=CallJob.attempts + 1)
            .returning(CallJob.call_id)))
        await s.commit()
    return claimed


async def next_due(db: Database, kind: str) -> datetime | None:
    """When the next job of ``kind`` becomes due: the earliest pending job's
    ``available_at`` or running job's lease expiry (None: no job waits)."""
    async with db.session(write=False) as s:
        row = (await s.execute(select(
            select(func.min(CallJob.available_at))
            .where(CallJob.kind == kind, CallJob.status == "pending").scalar_subquery(),
            select(func.min(CallJob.lease_expires_at))
            .where(CallJob.kind == kind, CallJob.status == "running").scalar_subquery(),
        ))).one()
    times = [t for t in row if t is not None]
    return min(times) if times else None


async def due_in(db: Database, kind: str, clock: Any) -> float | None:
    """Real seconds until the next job of ``kind`` is due (for the loop's idle wait)."""
    return due_in_seconds(clock, await next_due(db, kind))


async def renew(s: AsyncSession, call_id: str, kind: str, owner: str,
                until: datetime) -> bool:
    """Extend the lease; False when the job is no longer this worker's."""
    res = await s.execute(
        update(CallJob)
        .where(CallJob.call_id == call_id, CallJob.kind == kind, CallJob.owner == owner,
               CallJob.status == "running")
        .values(lease_expires_at=until))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def fence(s: AsyncSession, call_id: str, kind: str, owner: str, at: datetime,
                *, status: str = "done", error: str | None = None) -> bool:
    """Mark the job finished, only if this worker still owns it. Call it first in the
    transaction that writes the job's results: both commit or neither does."""
    return call_id in await fence_many(s, [call_id], kind, owner, at, status=status,
                                       error=error)


async def fence_many(s: AsyncSession, call_ids: list[str], kind: str, owner: str,
                     at: datetime, *, status: str = "done", error: str | None = None
                     ) -> set[str]:
    """:func:`fence` for many jobs in one statement; returns the call ids still owned (now
    finished)."""
    if not call_ids:
        return set()
    return set(await s.scalars(
        update(CallJob)
        .where(CallJob.call_id.in_(sorted(call_ids)), CallJob.kind == kind,
               CallJob.owner == owner, CallJob.status == "running")
        .values(status=status, finished_at=at, lease_expires_at=None, last_error=error)
        .returning(CallJob.call_id)))


async def release(db: Database, call_id: str, kind: str, owner: str, retry_at: datetime,
                  error: str) -> bool:
    """Give the job back for a later try (a transient failure)."""
    async with db.session() as s:
        res = await s.execute(
            update(CallJob)
            .where(CallJob.call_id == call_id, CallJob.kind == kind, CallJob.owner == owner,
                   CallJob.status == "running")
            .values(status="pending", owner=None, lease_expires_at=None, available_at=retry_at,
                    last_error=error[:2000]))
        await s.commit()
    return bool(res.rowcount)  # type: ignore[attr-defined]
