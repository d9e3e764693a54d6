"""Who is calling, and the one place that scopes every query to the caller's team.

Every read of a tenant-owned table goes through ``scoped`` (lists) or ``get_owned`` (one row
by id), so a route cannot forget the team filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.api.errors import bad_request, forbidden, not_found

T = TypeVar("T")


@dataclass(frozen=True)
class Principal:
    team_id: str
    team_slug: str
    key_id: str
    scopes: tuple[str, ...] = field(default=())

    def check_team(
        self, team_id: str | None = None, account_slug: str | None = None, *, required: bool = True
    ) -> None:
        """``teamId`` / ``accountSlug`` in a request must name the key's own team (else 403)."""
        if team_id is None and account_slug is None:
            if required:
                raise bad_request("teamId is required", "teamId")
            return
        if team_id is not None and team_id != self.team_id:
            if not ids.is_valid("team", team_id):
                raise bad_request("teamId is not a valid team id", "teamId")
            raise forbidden("Forbidden: teamId is not the team of this API key")
        if account_slug is not None and account_slug != self.team_slug:
            raise forbidden("Forbidden: accountSlug is not the team of this API key")


def scoped(model: type[T], principal: Principal) -> Select[tuple[T]]:
    """``SELECT model WHERE team_id = <caller's team>``: the start of every list query."""
    return select(model).where(model.team_id == principal.team_id)  # type: ignore[attr-defined]


async def get_owned(
    session: AsyncSession,
    model: type[T],
    object_id: str,
    principal: Principal,
    *,
    prefix: str,
    label: str,
    for_update: bool = False,
) -> T:
    """One row by id: 404 when unknown or of the wrong id kind, 403 when another team's."""
    if not ids.is_valid(prefix, object_id):
        raise not_found(label)
    stmt: Any = select(model).where(model.id == object_id)  # type: ignore[attr-defined]
    if for_update and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise not_found(label)
    if row.team_id != principal.team_id:  # type: ignore[attr-defined]
        raise forbidden()
    return row  # type: ignore[no-any-return]
