from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, UTCDateTime


class DncEntry(Base):
    """The team's do-not-call list; every dial checks it (SPEC 8)."""

    __tablename__ = "dnc_entries"
    id_prefix: ClassVar[str] = "dnc"
    label: ClassVar[str] = "Do-not-call entry"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A removed entry is kept (do-not-call requests are records for at least five years,
    # 47 CFR 64.1200(d)(6)); only entries without removed_at stop calls. Migration 0015.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("team_id", "phone_number"),)


class DialDecision(Base):
    """One compliance decision of the dialer: a placed, deferred or refused dial and why
    (compliance.decision.Decision; docs/compliance.md "Reading a decision")."""

    __tablename__ = "dial_decisions"
    id_prefix: ClassVar[str] = "dd"
    label: ClassVar[str] = "Dial decision"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    campaign_id: Mapped[str | None] = mapped_column(String(40))
    enrollment_id: Mapped[str | None] = mapped_column(String(40))
    contact_id: Mapped[str | None] = mapped_column(String(40))
    call_id: Mapped[str | None] = mapped_column(String(40))
    phone: Mapped[str | None] = mapped_column(String(32))
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(10))  # allow | defer | skip
    reason: Mapped[str | None] = mapped_column(String(40))
    rules_fired: Mapped[list[str]] = mapped_column(JSONType, default=list)
    table_version: Mapped[str | None] = mapped_column(String(20))
    jurisdictions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    local_times: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    next_allowed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # purpose, table digest, rules applied, caps, waived checks, margin, default flag
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        Index("ix_dial_decisions_team_id_evaluated_at_id", "team_id", "evaluated_at", "id"),
        Index("ix_dial_decisions_team_id_contact_id", "team_id", "contact_id", "evaluated_at"),
        Index("ix_dial_decisions_team_id_campaign_id", "team_id", "campaign_id", "evaluated_at"),
    )


class ComplianceChange(Base):
    """An audited change of a team's compliance settings: a consent check turned off, a
    shipped rule disabled, a team rule added (who, what, when)."""

    __tablename__ = "compliance_changes"
    id_prefix: ClassVar[str] = "cchg"
    label: ClassVar[str] = "Compliance change"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(80))  # the API key id (or "cli")
    action: Mapped[str] = mapped_column(String(60))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_compliance_changes_team_id_created_at", "team_id",
                            "created_at"),)


class SuppressionList(Base):
    """A do-not-call list from outside the team, e.g. a download of the National Do Not Call
    Registry (``kind = national_dnc``), with the date the registry produced it."""

    __tablename__ = "suppression_lists"
    id_prefix: ClassVar[str] = "sup"
    label: ClassVar[str] = "Suppression list"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    registry_date: Mapped[datetime] = mapped_column(UTCDateTime)
    numbers: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_suppression_lists_team_id_created_at", "team_id",
                            "created_at"),)


class SuppressedNumber(Base):
    __tablename__ = "suppressed_numbers"

    list_id: Mapped[str] = mapped_column(
        ForeignKey("suppression_lists.id", ondelete="CASCADE"), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40))

    __table_args__ = (Index("ix_suppressed_numbers_team_id_phone_number", "team_id",
                            "phone_number"),)
