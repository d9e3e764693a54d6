"""The team do-not-call list (SPEC 8): every dial checks it; an opt-out during a call and the
API add to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.compliance.models import DncEntry
from callfleet.crm import fields as F
from callfleet.db.base import utcnow
from callfleet.errors import conflict
from callfleet.teams.principal import Principal, TeamScope

# A number to add: (team_id, phone, reason, source, at).
DncRow = tuple[str, str, str, str, datetime]


async def add_many_to_dnc(session: AsyncSession, entries: list[DncRow]) -> None:
    """One statement, no savepoint (a savepoint would flush the caller's whole batch); an
    existing entry for a number wins."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for team_id, phone, reason, source, at in entries:
        rows.setdefault((team_id, phone), {
            "id": ids.new_id("dnc"), "team_id": team_id, "phone_number": phone,
            "reason": reason, "source": source, "created_at": at})
    dialect = session.bind.dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert_(DncEntry).values([rows[k] for k in sorted(rows)])
        .on_conflict_do_nothing(index_elements=["team_id", "phone_number"])
    )


async def add_to_dnc(session: AsyncSession, team_id: str, phone: str, reason: str,
                     source: str, at: datetime) -> None:
    await add_many_to_dnc(session, [(team_id, phone, reason, source, at)])


async def is_listed(session: AsyncSession, scope: TeamScope, phone: str) -> bool:
    return await session.scalar(
        scope.select(DncEntry.id).where(DncEntry.phone_number == phone)) is not None


async def list_entries(session: AsyncSession, p: Principal, search: str | None, limit: int,
                       offset: int) -> tuple[list[DncEntry], int]:
    stmt = p.scope.select(DncEntry)
    if search:
        digits = F.digits(search)
        if digits:
            stmt = stmt.where(DncEntry.phone_number.contains(digits))
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await session.scalars(stmt.order_by(DncEntry.id.desc()).limit(limit).offset(offset))
    return list(rows), total


async def add_entry(session: AsyncSession, p: Principal, phone: str, reason: str | None
                    ) -> DncEntry:
    """409 when the number is listed already."""
    if await is_listed(session, p.scope, phone):
        raise conflict(f"{phone} is already on the do-not-call list")
    entry = DncEntry(id=ids.new_id("dnc"), team_id=p.team_id, phone_number=phone,
                     reason=F.clean_text(reason, 500), source="api", created_at=utcnow())
    session.add(entry)
    return entry


async def remove_entry(session: AsyncSession, p: Principal, entry_id: str) -> None:
    entry = await p.scope.get(session, DncEntry, entry_id)
    await session.delete(entry)
