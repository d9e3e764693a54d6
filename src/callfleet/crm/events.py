"""Events about CRM rows, written to the outbox in the caller's transaction (SPEC 7)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.crm.models import Contact
from callfleet.crm.views import contact_out
from callfleet.webhooks.outbox import emit


def emit_contact_updated(session: AsyncSession, c: Contact, at: datetime,
                         changed: list[str]) -> None:
    """``contact.updated`` for a change of the contact (``changed`` names the fields)."""
    emit(session, c.team_id, "contact.updated",
         {"contact": contact_out(c), "changed": sorted(changed)}, at, subject_id=c.id)
