"""Calls-per-second limits per carrier account, held across every worker.

Each account has one row in ``carrier_pacing`` (a token bucket, ``dialer.rules.pacing_tokens``:
it refills at the account's rate and holds at most one second of calls). The dialer takes
tokens in the same transaction that claims the calls, under a row lock on PostgreSQL
(SQLite serialises writers), so any number of workers together start at most the
account's calls per second.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.carriers.models import CarrierPacing
from callfleet.dialer import rules


async def take(session: AsyncSession, wanted: dict[str, tuple[int, float]], now: datetime
               ) -> dict[str, int]:
    """For each account key, ``(calls wanted, calls per second)`` → calls granted now."""
    keys = sorted(wanted)
    postgres = session.bind.dialect.name == "postgresql"
    insert_ = pg_insert if postgres else sqlite_insert
    await session.execute(
        insert_(CarrierPacing).values([{"account": k, "tokens": 0.0, "at": None} for k in keys])
        .on_conflict_do_nothing(index_elements=["account"]))
    stmt = (select(CarrierPacing).where(CarrierPacing.account.in_(keys))
            .order_by(CarrierPacing.account).execution_options(populate_existing=True))
    if postgres:
        stmt = stmt.with_for_update()
    granted: dict[str, int] = {}
    for bucket in await session.scalars(stmt):
        n, rate = wanted[bucket.account]
        tokens = rules.pacing_tokens(bucket.tokens, bucket.at, now, rate)
        grant = max(0, min(n, int(tokens)))
        bucket.tokens = tokens - grant
        bucket.at = now
        granted[bucket.account] = grant
    return granted
