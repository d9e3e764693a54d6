"""Who is calling, and the one place that scopes queries to a team.

Every tenant-facing read and write goes through a :class:`TeamScope` (``principal.scope``):
``scope.select(Model)`` starts a query that sees only the team's rows, ``scope.get`` loads one
row by id (404 when unknown, 403 when another team's, SPEC 2), ``scope.get_many`` checks a
list of references a request names, ``scope.update`` / ``scope.delete`` write only the team's
rows, ``scope.owns(Model)`` is the filter itself for a correlated subquery or a join.
A hand-written ``.team_id ==`` anywhere else fails ``tests/test_architecture.py`` unless its
line says ``# tenancy: system`` (the dialer and background loops, which work across teams on
purpose).

Models carry their id prefix and the label their errors use (``id_prefix``, ``label``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Delete,
    Exists,
    Select,
    Update,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from callfleet import ids
from callfleet.errors import bad_request, forbidden, not_found

T = TypeVar("T")


def _model_of(entity: Any) -> Any:
    """The mapped class a select's first entity belongs to (a class or one of its columns)."""
    if isinstance(entity, QueryableAttribute):
        return entity.class_
    return entity


@dataclass(frozen=True)
class TeamScope:
    """Queries and writes that see one team's rows only."""

    team_id: str

    def owns(self, model: Any) -> ColumnElement[bool]:
        """The team filter of ``model`` (a mapped class with a ``team_id`` column)."""
        return model.team_id == self.team_id  # type: ignore[no-any-return]

    def select(self, *entities: Any) -> Select[Any]:
        """``SELECT entities WHERE <first entity's table>.team_id = team``."""
        return select(*entities).where(self.owns(_model_of(entities[0])))

    def count(self, model: Any) -> Select[Any]:
        """``SELECT count(*) FROM model WHERE team_id = team``."""
        return select(func.count()).select_from(model).where(self.owns(model))

    def exists(self, model: Any, *criteria: Any) -> Exists:
        return exists().where(self.owns(model), *criteria)

    def update(self, model: Any) -> Update:
        return update(model).where(self.owns(model))

    def delete(self, model: Any) -> Delete:
        return delete(model).where(self.owns(model))

    def holds(self, row: Any) -> bool:
        """Is ``row`` (already loaded) the team's?"""
        return bool(row.team_id == self.team_id)

    def check(self, row: Any, error: str | None = None) -> None:
        """403 unless ``row`` (already loaded) is the team's."""
        if not self.holds(row):
            raise forbidden(error) if error else forbidden()

    async def get(self, session: AsyncSession, model: type[T], object_id: str, *,
                  for_update: bool = False) -> T:
        """One row by id: 404 when unknown or of the wrong id kind, 403 when another
        team's (SPEC 2)."""
        label: str = model.label  # type: ignore[attr-defined]
        if not ids.is_valid(model.id_prefix, object_id):  # type: ignore[attr-defined]
            raise not_found(label)
        stmt: Any = select(model).where(model.id == object_id)  # type: ignore[attr-defined]
        if for_update and session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = (await session.execute(stmt)).scalar_one_or_none()
        if row is None:
            raise not_found(label)
        self.check(row)
        return row  # type: ignore[no-any-return]

    async def get_many(self, session: AsyncSession, model: type[T], object_ids: Iterable[str],
                       *, forbidden_error: str, for_update: bool = False) -> dict[str, T]:
        """The rows a request refers to by id, those that exist (malformed and unknown ids
        are the caller's to report, in its request's words); 403 with ``forbidden_error``
        when one is another team's."""
        wanted = sorted(set(object_ids))
        rows: dict[str, T] = {}
        for start in range(0, len(wanted), 900):
            stmt: Any = (select(model)
                         .where(model.id.in_(wanted[start:start + 900]))  # type: ignore[attr-defined]
                         .order_by(model.id))  # type: ignore[attr-defined]
            if for_update and session.bind.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            rows.update({r.id: r for r in await session.scalars(stmt)})
        if any(r.team_id != self.team_id for r in rows.values()):
            raise forbidden(forbidden_error)
        return rows


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an API key of one team."""

    team_id: str
    team_slug: str
    key_id: str
    scopes: tuple[str, ...] = field(default=())

    @property
    def scope(self) -> TeamScope:
        return TeamScope(self.team_id)

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
