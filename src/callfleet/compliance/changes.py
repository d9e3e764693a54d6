"""The audit log of a team's compliance choices: an owner turning a consent check off, a
shipped rule disabled, a team rule added or removed (who, what, when; kept with the team)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.compliance.models import ComplianceChange
from callfleet.db.base import iso
from callfleet.errors import forbidden
from callfleet.teams.principal import Principal


def require_owner(p: Principal, what: str) -> None:
    """Only an owner key (no scopes, i.e. full access, or the ``owner`` scope) may loosen a
    compliance check; anyone else gets a 403 naming what was refused."""
    if not p.owner:
        raise forbidden(f"Forbidden: only an owner API key may {what}")


def log_change(session: AsyncSession, team_id: str, actor: str, action: str,
               detail: dict[str, Any], at: datetime) -> None:
    session.add(ComplianceChange(id=ids.new_id("cchg"), team_id=team_id, actor=actor,
                                 action=action, detail=detail, created_at=at))


def change_out(c: ComplianceChange) -> dict[str, Any]:
    return {"id": c.id, "team_id": c.team_id, "actor": c.actor, "action": c.action,
            "detail": c.detail or {}, "created_at": iso(c.created_at)}


async def list_changes(session: AsyncSession, p: Principal, limit: int, offset: int
                       ) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(ComplianceChange)
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await session.scalars(stmt.order_by(ComplianceChange.created_at.desc(),
                                               ComplianceChange.id.desc())
                                 .limit(limit).offset(offset))
    return [change_out(c) for c in rows], total
