"""Small lookups the web pages need beside the API's lists: names for the ids a page shows
(one query per page, never one per row)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.crm.models import Company
from callfleet.teams.principal import Principal

MAX_IDS = 1000


async def company_names(session: AsyncSession, p: Principal,
                        company_ids: Iterable[str]) -> dict[str, str]:
    """Names of the caller's companies among ``company_ids`` (others are simply absent)."""
    wanted = sorted({i for i in company_ids if i})[:MAX_IDS]
    if not wanted:
        return {}
    rows = await session.execute(
        p.scope.select(Company.id, Company.name)
        .where(Company.id.in_(wanted)))
    return {i: name for i, name in rows}


async def company_choices(session: AsyncSession, p: Principal,
                          limit: int = 1000) -> tuple[list[tuple[str, str]], bool]:
    """Up to ``limit`` companies as (id, name) sorted by name for a picker, and whether the
    team has more than that."""
    rows = list(await session.execute(
        p.scope.select(Company.id, Company.name)
        .order_by(Company.name_lower, Company.id).limit(limit + 1)))
    return [(i, n) for i, n in rows[:limit]], len(rows) > limit
