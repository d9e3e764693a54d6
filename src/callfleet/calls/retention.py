"""Recording retention: recordings older than the team's retention are deleted.

The retention is the team's ``recordingRetentionDays`` or, when the team has none, the
deployment's ``CALLFLEET_RECORDING_RETENTION_DAYS`` (0: keep forever); a recording's age
counts from the end of its call. ``RecordingSweeper`` runs in the worker (``callfleet
worker``, or ``serve`` with its worker) every ``every`` seconds; each pass unlinks at most
``batch`` recordings per team (the calls keep their transcript), commits, then deletes them
from the store (``recordings.delete_recordings``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select

from callfleet.calls.models import Call
from callfleet.clock import Clock
from callfleet.db.session import Database
from callfleet.recordings import RecordingStore, delete_recordings
from callfleet.teams.models import Team
from callfleet.teams.principal import TeamScope

log = structlog.get_logger("callfleet.recordings")

SWEEP_SECONDS = 3600.0


def retention_days(team_settings: dict | None, default_days: int) -> int:  # type: ignore[type-arg]
    days = (team_settings or {}).get("recording_retention_days")
    return int(days) if isinstance(days, int) and days > 0 else default_days


async def sweep(db: Database, store: RecordingStore, now: datetime, default_days: int,
                batch: int = 500) -> int:
    """One pass over every team; returns how many recordings were deleted."""
    async with db.session(write=False) as s:
        teams = list(await s.execute(select(Team.id, Team.settings)))  # tenancy: system
    deleted = 0
    for team_id, team_settings in teams:
        days = retention_days(team_settings, default_days)
        if days <= 0:
            continue
        scope = TeamScope(team_id)
        cutoff = now - timedelta(days=days)
        async with db.session() as s:
            old = list(await s.scalars(
                scope.select(Call.id).where(Call.recording_url.is_not(None),
                                            Call.ended_at < cutoff).limit(batch)))
            if not old:
                continue
            await s.execute(scope.update(Call).where(Call.id.in_(old))
                            .values(recording_url=None))
            await s.commit()
        deleted += await delete_recordings(store, old)
        log.info("recordings_expired", team_id=team_id, count=len(old), days=days)
    return deleted


class RecordingSweeper:
    def __init__(self, db: Database, clock: Clock, store: RecordingStore, default_days: int,
                 every: float = SWEEP_SECONDS) -> None:
        self.db = db
        self.clock = clock
        self.store = store
        self.default_days = default_days
        self.every = every

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await sweep(self.db, self.store, self.clock.now(), self.default_days)
            except Exception:  # the next pass retries; recordings are never lost early
                log.exception("recording_sweep_failed")
            try:
                await asyncio.wait_for(stop.wait(), self.every)
            except TimeoutError:
                pass
