"""Undo: put back the contact values a call's analysis wrote."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.calls.models import Call, CallEvent
from callfleet.calls.views import call_out
from callfleet.conversation.analysis.apply import current_value
from callfleet.crm.events import emit_contact_updated
from callfleet.crm.models import Contact
from callfleet.crm.service import refresh_search_columns
from callfleet.db.base import iso, utcnow
from callfleet.errors import conflict
from callfleet.teams.principal import Principal


async def revert_analysis(s: AsyncSession, p: Principal, call_id: str, at: datetime
                          ) -> dict[str, Any]:
    """Put back the contact values an analysis wrote (those not changed since). 409 when
    there is nothing to revert or it was reverted already."""
    call = await p.scope.get(s, Call, call_id, for_update=True)
    analysis = dict(call.analysis or {})
    extracted = analysis.get("extracted_data") or {}
    if analysis.get("reverted_at"):
        raise conflict("The call's analysis was already reverted")
    if not any(item.get("changed") for item in extracted.values()):
        raise conflict("The call's analysis changed no contact value; nothing to revert")
    contact = None
    if call.contact_id:
        stmt = p.scope.select(Contact).where(Contact.id == call.contact_id)
        if s.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        contact = await s.scalar(stmt)
    if contact is None:
        raise conflict("The call's contact no longer exists")
    reverted: list[str] = []
    skipped: dict[str, str] = {}
    changed: set[str] = set()
    for key, item in extracted.items():
        if not item.get("changed"):
            continue
        target = item.get("target") or "custom_fields"
        written = item.get("written", item.get("value"))
        if current_value(contact, target, key) != written:
            skipped[key] = "changed since the call; left as is"
            continue
        if target == "custom_fields":
            custom = dict(contact.custom_fields or {})
            if item.get("previous") is None:
                custom.pop(key, None)
            else:
                custom[key] = item["previous"]
            contact.custom_fields = custom
            changed.add("custom_fields")
        else:
            previous = item.get("previous")
            if target == "lead_status" and previous is None:
                previous = "new"
            setattr(contact, target, previous)
            changed.add(target)
        reverted.append(key)
    if changed:
        refresh_search_columns(contact)
        contact.updated_at = utcnow()
        emit_contact_updated(s, contact, at, sorted(changed))
    analysis.update(reverted_at=iso(at), reverted=reverted)
    if skipped:
        analysis["revert_skipped"] = skipped
    call.analysis = analysis
    s.add(CallEvent(id=ids.new_id("evt"), call_id=call.id, type="call.analysis_reverted", at=at,
                    data={"reverted": reverted, "skipped": sorted(skipped)}))
    await s.flush()
    events = list(await s.scalars(
        select(CallEvent).where(CallEvent.call_id == call.id)
        .order_by(CallEvent.at, CallEvent.id)))
    return call_out(call, full=True, events=events)
