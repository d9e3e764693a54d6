"""The event outbox (SPEC 7): ``emit`` adds an event to the caller's transaction, so the event
exists exactly when the change it describes was committed (a crash loses neither or both);
the webhook sender fans the table out to the team's endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, FetchedValue, Index, String, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from callfleet import ids
from callfleet.db.base import Base, JSONType, UTCDateTime
from callfleet.db.staging import stage
from callfleet.wakeup import notify


class OutboxEvent(Base):
    """One event of SPEC 7, written in the same transaction as the change it describes.

    The row's ``id`` is the stable event id receivers deduplicate on."""

    __tablename__ = "outbox_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(60))
    # The call/campaign/contact the event is about (deliveries keep this order per subject).
    subject_id: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set once the event has been fanned out to the team's matching endpoints.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Commit order, assigned by the database (a sequence on PostgreSQL, the rowid through a
    # trigger on SQLite; migration 0005). ULID ids are not enough: two events written in the
    # same millisecond (call.hangup and call.completed) have random relative order.
    seq: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())

    __table_args__ = (
        Index("ix_outbox_events_dispatched_at_id", "dispatched_at", "id"),
        Index("ix_outbox_events_team_id_id", "team_id", "id"),
        Index("ix_outbox_events_undispatched_seq", "seq",
              postgresql_where=text("dispatched_at IS NULL"),
              sqlite_where=text("dispatched_at IS NULL")),
        Index("ix_outbox_events_undispatched_subject", "subject_id", "seq",
              postgresql_where=text("dispatched_at IS NULL"),
              sqlite_where=text("dispatched_at IS NULL")),
    )
    # The emitter never reads ``seq`` back: no RETURNING round trip per event.
    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": False}


# The event type of ``POST /api/webhooks/{id}/test`` deliveries (never in the outbox).
TEST_EVENT = "webhook.test"

EVENT_TYPES = (
    "call.initiated", "call.ringing", "call.answered", "call.machine_detection.ended",
    "call.hangup", "call.completed", "call.analyzed", "contact.updated",
    "campaign.started", "campaign.paused", "campaign.resumed", "campaign.completed",
    "campaign.cancelled", "campaign.scheduled", "campaign.unscheduled",
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
