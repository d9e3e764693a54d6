"""Writing events: ``emit`` adds the event to the caller's transaction, so the event exists
exactly when the change it describes was committed (a crash loses neither or both)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.db.staging import stage
from callfleet.wakeup import notify
from callfleet.webhooks.models import OutboxEvent

EVENT_TYPES = (
    "call.initiated", "call.ringing", "call.answered", "call.machine_detection.ended",
    "call.hangup", "call.completed", "call.analyzed", "contact.updated",
    "campaign.started", "campaign.paused", "campaign.resumed", "campaign.completed",
    "campaign.cancelled",
)


def emit(session: AsyncSession, team_id: str, type: str, data: dict[str, Any], at: datetime,
         *, subject_id: str | None = None) -> str:
    """Record one event in the session's transaction; returns its id. The row is staged
    (``db.staging``): it is written with the transaction's next flush or its commit."""
    assert type in EVENT_TYPES, type
    event_id = ids.new_id("evt")
    stage(session, _TABLE, {"id": event_id, "team_id": team_id, "type": type,
                            "subject_id": subject_id, "data": data, "created_at": at,
                            "dispatched_at": None})
    notify(session, "webhooks")
    return event_id


_TABLE = OutboxEvent.__table__
