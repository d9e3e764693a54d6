from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, TeamOwned, UTCDateTime


class Campaign(TeamOwned, Base):
    __tablename__ = "campaigns"
    id_prefix: ClassVar[str] = "camp"
    label: ClassVar[str] = "Campaign"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    assistant_id: Mapped[str] = mapped_column(ForeignKey("assistants.id"))
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    status_reason: Mapped[str | None] = mapped_column(Text)
    from_number_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    scheduled_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    call_window_start: Mapped[str] = mapped_column(String(8), default="09:00")
    call_window_end: Mapped[str] = mapped_column(String(8), default="17:00")
    call_window_timezone: Mapped[str] = mapped_column(String(64), default="America/New_York")
    call_window_days: Mapped[list[str]] = mapped_column(JSONType, default=list)
    use_contact_timezone: Mapped[bool] = mapped_column(Boolean, default=True)
    max_concurrent_calls: Mapped[int] = mapped_column(Integer, default=3)
    max_attempts_per_contact: Mapped[int] = mapped_column(Integer, default=3)
    retry_delay_minutes: Mapped[int] = mapped_column(Integer, default=60)
    retry: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    audience: Mapped[str] = mapped_column(String(20), default="manual")
    no_auto_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    voicemail_action: Mapped[str | None] = mapped_column(String(20))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # telemarketing | informational (compliance: which rules and consent apply; migration
    # 0014). ``consent_check`` off (an owner's choice, logged) lets an AI-voice
    # telemarketing campaign call contacts without prior express written consent.
    purpose: Mapped[str] = mapped_column(String(20), default="informational",
                                         server_default="informational")
    consent_check: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Calls in progress, changed only by conditional UPDATEs in the same transaction as the
    # call row they count, so no worker can ever exceed max_concurrent_calls.
    active_calls: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_campaigns_team_id_id", "team_id", "id"),
        Index("ix_campaigns_status", "status"),
    )


class Enrollment(Base):
    """A contact's membership in one campaign (SPEC: campaign contact, id prefix ``cc``)."""

    __tablename__ = "campaign_contacts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome_counts: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    last_call_id: Mapped[str | None] = mapped_column(String(40))
    from_number_id: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_campaign_contacts_due", "campaign_id", "status", "next_attempt_at"),
        Index("ix_campaign_contacts_contact_id", "contact_id"),
        # The counters (campaigns.service.counters) read only this index (migration 0028).
        Index("ix_campaign_contacts_tally", "campaign_id", "status", "answered", "attempts"),
    )
