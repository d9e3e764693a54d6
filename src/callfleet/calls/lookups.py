"""Small reads the web pages need beside the calls API: what recent calls wrote into one
contact (their extracted values), in one statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.calls.models import Call
from callfleet.db.base import iso
from callfleet.teams.principal import Principal


async def extractions_for_contact(session: AsyncSession, p: Principal, contact_id: str,
                                  limit: int = 10) -> list[dict[str, Any]]:
    """The contact's most recent analysed calls whose analysis wrote a value, newest first:
    call id, when it ended, the extracted values (with the previous ones) and whether the
    analysis was reverted."""
    rows = await session.execute(
        p.scope.select(Call.id, Call.ended_at, Call.analysis)
        .where(Call.contact_id == contact_id, Call.ended_at.is_not(None))
        .order_by(Call.id.desc()).limit(50))
    out = []
    for call_id, ended_at, analysis in rows:
        extracted = (analysis or {}).get("extracted_data") or {}
        if any(item.get("changed") for item in extracted.values() if isinstance(item, dict)):
            out.append({"call_id": call_id, "ended_at": iso(ended_at), "extracted": extracted,
                        "reverted_at": (analysis or {}).get("reverted_at")})
        if len(out) >= limit:
            break
    return out
