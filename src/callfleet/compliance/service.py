"""The team do-not-call list (SPEC 8): every dial checks it; an opt-out during a call and the
API add to it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.compliance.models import DncEntry, SuppressedNumber, SuppressionList
from callfleet.crm import fields as F
from callfleet.db.base import iso, utcnow
from callfleet.errors import conflict
from callfleet.teams.principal import Principal, TeamScope

# A number to add: (team_id, phone, reason, source, at).
DncRow = tuple[str, str, str, str, datetime]


async def add_many_to_dnc(session: AsyncSession, entries: list[DncRow]) -> None:
    """One statement, no savepoint (a savepoint would flush the caller's whole batch); an
    existing entry for a number wins, and a removed one is in force again."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for team_id, phone, reason, source, at in entries:
        rows.setdefault((team_id, phone), {
            "id": ids.new_id("dnc"), "team_id": team_id, "phone_number": phone,
            "reason": reason, "source": source, "created_at": at})
    dialect = session.bind.dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert_(DncEntry).values([rows[k] for k in sorted(rows)])
        .on_conflict_do_update(index_elements=["team_id", "phone_number"],
                               set_={"removed_at": None})
    )


async def add_to_dnc(session: AsyncSession, team_id: str, phone: str, reason: str,
                     source: str, at: datetime) -> None:
    await add_many_to_dnc(session, [(team_id, phone, reason, source, at)])


async def is_listed(session: AsyncSession, scope: TeamScope, phone: str) -> bool:
    return await session.scalar(
        scope.select(DncEntry.id).where(DncEntry.phone_number == phone,
                                        DncEntry.removed_at.is_(None))) is not None


async def list_entries(session: AsyncSession, p: Principal, search: str | None, limit: int,
                       offset: int, include_removed: bool = False
                       ) -> tuple[list[DncEntry], int]:
    stmt = p.scope.select(DncEntry)
    if not include_removed:
        stmt = stmt.where(DncEntry.removed_at.is_(None))
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
    removed = await session.scalar(p.scope.select(DncEntry).where(DncEntry.phone_number == phone))
    if removed is not None:  # listed again: the kept record is in force again
        removed.removed_at = None
        removed.reason = F.clean_text(reason, 500)
        removed.source = "api"
        return removed
    entry = DncEntry(id=ids.new_id("dnc"), team_id=p.team_id, phone_number=phone,
                     reason=F.clean_text(reason, 500), source="api", created_at=utcnow())
    session.add(entry)
    return entry


async def remove_entry(session: AsyncSession, p: Principal, entry_id: str) -> None:
    """The number may be called again; the request stays on record (removed_at is set), as
    do-not-call requests are kept at least five years (47 CFR 64.1200(d)(6))."""
    entry = await p.scope.get(session, DncEntry, entry_id)
    if entry.removed_at is None:
        entry.removed_at = utcnow()


# ---------------------------------------------------------------- national registry

#: A registry download older than this is stale: the FTC requires a scrub within 31 days.
NATIONAL_MAX_AGE_DAYS = 31
_REGISTRY_LINE = re.compile(r"^\s*\(?([2-9][0-9]{2})\)?[\s,;|.-]*([2-9][0-9]{2})[\s.-]?"
                            r"([0-9]{4})\s*$")


def registry_numbers(lines: Iterable[str]) -> tuple[set[str], list[dict[str, Any]]]:
    """E.164 numbers from a National Do Not Call Registry download: one number per line as
    area code and number (``201,2345678``, ``2012345678``, ``(201) 234-5678``). A header
    line and blank lines are skipped; anything else is an error naming its line."""
    numbers: set[str] = set()
    errors: list[dict[str, Any]] = []
    for n, line in enumerate(lines, start=1):
        text = line.strip().strip('"')
        if not text or (n == 1 and not any(ch.isdigit() for ch in text)):
            continue
        m = _REGISTRY_LINE.match(text.replace('"', ""))
        if m is None:
            if len(errors) < 1000:
                errors.append({"row": n, "error": "expected an area code and a 7-digit number"})
            continue
        numbers.add(f"+1{m.group(1)}{m.group(2)}{m.group(3)}")
    return numbers, errors


async def import_registry(session: AsyncSession, p: Principal, name: str, registry_date: datetime,
                          numbers: set[str], now: datetime) -> SuppressionList:
    listing = SuppressionList(id=ids.new_id("sup"), team_id=p.team_id, kind="national_dnc",
                              name=name, registry_date=registry_date, numbers=len(numbers),
                              created_at=now)
    session.add(listing)
    await session.flush()
    rows = [{"list_id": listing.id, "phone_number": n, "team_id": p.team_id}
            for n in sorted(numbers)]
    for start in range(0, len(rows), 5000):
        await session.execute(insert(SuppressedNumber), rows[start:start + 5000])
    return listing


def suppression_out(s: SuppressionList, now: datetime) -> dict[str, Any]:
    age = (now - s.registry_date).days
    out: dict[str, Any] = {
        "id": s.id, "team_id": s.team_id, "kind": s.kind, "name": s.name,
        "registry_date": s.registry_date.date().isoformat(), "numbers": s.numbers,
        "age_days": age, "stale": age > NATIONAL_MAX_AGE_DAYS, "created_at": iso(s.created_at),
        "warning": None,
    }
    if out["stale"]:
        out["warning"] = (f"The registry data is {age} days old; telemarketing calls need a "
                          f"scrub no older than {NATIONAL_MAX_AGE_DAYS} days: import a newer "
                          "download")
    return out


async def list_suppressions(session: AsyncSession, p: Principal, limit: int, offset: int
                            ) -> tuple[list[SuppressionList], int]:
    stmt = p.scope.select(SuppressionList)
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await session.scalars(stmt.order_by(SuppressionList.created_at.desc(),
                                               SuppressionList.id.desc())
                                 .limit(limit).offset(offset))
    return list(rows), total


async def delete_suppression(session: AsyncSession, p: Principal, list_id: str) -> None:
    listing = await p.scope.get(session, SuppressionList, list_id)
    await session.execute(delete(SuppressedNumber).where(SuppressedNumber.list_id == listing.id))
    await session.delete(listing)
