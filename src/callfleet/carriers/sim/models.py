from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, UTCDateTime


class SimCall(Base):
    """The simulated network's own record of a call (not callfleet's ``calls`` row).

    Kept in the database so that any process can advance it: a worker that dies does not
    take its calls' network state with it, exactly as a real carrier keeps a call going
    when the dialer crashes.
    """

    __tablename__ = "sim_calls"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # carrier call id
    call_ref: Mapped[str] = mapped_column(String(40), unique=True)  # callfleet's call id
    from_number: Mapped[str] = mapped_column(String(32))
    to_number: Mapped[str] = mapped_column(String(32))
    behaviour: Mapped[str] = mapped_column(String(30))
    persona: Mapped[str | None] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(20))  # ringing|answered|ended|refused
    outcome: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The call's timeline, fixed at dial time: [[event, iso time], ...]; ``events_sent`` is
    # the cursor, ``next_event_at`` the due time of timeline[events_sent] (NULL when done).
    # A hangup requested by callfleet moves the final "ended" earlier via ``hangup_at``.
    timeline: Mapped[list[list[str]]] = mapped_column(JSONType, default=list)
    events_sent: Mapped[int] = mapped_column(Integer, default=0)
    next_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hangup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        Index("ix_sim_calls_next_event_at", "next_event_at"),
        Index("ix_sim_calls_to_number", "to_number"),
    )


class SimProfile(Base):
    """A fixed behaviour for one number, set by tests or the demo (else derived by hash)."""

    __tablename__ = "sim_profiles"

    phone_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    behaviours: Mapped[list[str]] = mapped_column(JSONType, default=list)  # one per attempt
    persona: Mapped[str | None] = mapped_column(String(30))
    ring_seconds: Mapped[int | None] = mapped_column(Integer)
