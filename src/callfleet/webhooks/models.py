from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, UTCDateTime


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

    __table_args__ = (
        Index("ix_outbox_events_dispatched_at_id", "dispatched_at", "id"),
        Index("ix_outbox_events_team_id_id", "team_id", "id"),
    )
