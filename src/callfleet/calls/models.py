from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, validates

from callfleet.compliance.duties import greeting
from callfleet.db.base import Base, JSONType, TeamOwned, UTCDateTime

ACTIVE_CALL_STATUSES = ("queued", "dialing", "ringing", "in_progress")


class Call(TeamOwned, Base):
    __tablename__ = "calls"
    id_prefix: ClassVar[str] = "call"
    label: ClassVar[str] = "Call"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(10), default="outbound")
    campaign_id: Mapped[str | None] = mapped_column(String(40))
    enrollment_id: Mapped[str | None] = mapped_column(String(40))
    contact_id: Mapped[str | None] = mapped_column(String(40))
    assistant_id: Mapped[str | None] = mapped_column(String(40))
    from_number: Mapped[str] = mapped_column(String(32))
    to_number: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    outcome: Mapped[str | None] = mapped_column(String(20))
    ended_reason: Mapped[str | None] = mapped_column(String(80))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    carrier: Mapped[str] = mapped_column(String(20), default="sim")
    carrier_call_id: Mapped[str | None] = mapped_column(String(100))
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # compliance.duties.greeting of ``messages``, kept with them (``transcript_columns`` and
    # the validator below): the dashboard's abandonment rate is an index-only count of it
    # (docs/decisions/0048-greeting-judged-when-written.md).
    greeting: Mapped[str] = mapped_column(String(8), default="none", server_default="none")
    transcript: Mapped[str | None] = mapped_column(Text)
    analysis: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    call_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    recording_url: Mapped[str | None] = mapped_column(String(500))
    # Lease: the worker that dialed owns the call until lease_expires_at; after that any
    # worker reconciles it with the carrier (never re-dials it).
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A live voice call's reserved voice slot (``calls.slots``), given back when it ends.
    voice_process_id: Mapped[str | None] = mapped_column(String(120))

    __table_args__ = (
        # The durable "one call per attempt" key: a second dial of the same attempt cannot
        # be inserted.
        UniqueConstraint("enrollment_id", "attempt"),
        Index("ix_calls_team_id_id", "team_id", "id"),
        Index("ix_calls_campaign_id_status", "campaign_id", "status"),
        # The campaign dashboard (migration 0028): calls by outcome (covering), the last
        # hour's ended calls.
        Index("ix_calls_campaign_id_outcome", "campaign_id", "outcome"),
        Index("ix_calls_campaign_id_ended_at", "campaign_id", "ended_at"),
        # The abandonment sample, read from the index alone (migration 0029).
        Index("ix_calls_campaign_answered_greeting", "campaign_id", "answered_at", "outcome",
              "greeting"),
        Index("ix_calls_status_lease", "status", "lease_expires_at"),
        Index("ix_calls_contact_id", "contact_id"),
        Index("ix_calls_carrier_call_id", "carrier_call_id"),
        # Frequency caps: the team's recent calls to a number (migration 0014).
        Index("ix_calls_team_id_to_number_started_at", "team_id", "to_number", "started_at"),
    )

    @validates("messages")
    def _judge_greeting(self, _key: str, messages: list[dict[str, Any]] | None
                        ) -> list[dict[str, Any]] | None:
        """Every ORM write of the messages (``call.messages = ...``, ``Call(messages=...)``)
        judges the greeting with them."""
        self.greeting = greeting(messages)
        return messages

    @staticmethod
    def transcript_columns(messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The values for a bulk ``update(Call).values(**...)`` that writes the messages (a
        statement no validator sees): the messages and their greeting, never one alone."""
        return {"messages": messages, "greeting": greeting(messages)}


class CallEvent(Base):
    __tablename__ = "call_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(60))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (Index("ix_call_events_call_id_at", "call_id", "at"),)
