"""A call's timeline: each step is a ``call_events`` row and, in the same transaction, the
outbox event webhooks deliver (SPEC 5 and 7)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.calls.models import Call, CallEvent
from callfleet.calls.views import call_out
from callfleet.db.staging import stage
from callfleet.webhooks.outbox import emit

CALL_EVENTS = CallEvent.__table__


def add_event(session: AsyncSession, call: Call, kind: str, at: datetime,
              data: dict[str, Any] | None = None) -> None:
    """Record a step of the call's timeline and, in the same transaction, its event for
    webhooks (SPEC 7). Both rows are staged (``db.staging``): a batch of calls pays one
    INSERT per table, not one ORM object per step."""
    stage(session, CALL_EVENTS, {"id": ids.new_id("evt"), "call_id": call.id, "type": kind,
                                 "at": at, "data": data or {}})
    emit(session, call.team_id, kind, {"call": call_out(call), **(data or {})}, at,
         subject_id=call.id)
