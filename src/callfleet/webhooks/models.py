"""Webhooks (SPEC 7): the team's endpoints and one delivery row per endpoint and event (its
retry state, lease and attempt log). The events themselves are ``webhooks.outbox``'s."""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, UTCDateTime


class WebhookEndpoint(Base):
    """A URL of the team's that receives signed deliveries of the event types it lists."""

    __tablename__ = "webhook_endpoints"
    id_prefix: ClassVar[str] = "wh"
    label: ClassVar[str] = "Webhook"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # Event types of SPEC 7, or ["*"] for all of them.
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The signing secret, encrypted with the deployment's key (webhooks/secrets.py).
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # Shown in the masked secret so a user can tell which secret is configured.
    secret_hint: Mapped[str] = mapped_column(String(40))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_webhook_endpoints_team_id_id", "team_id", "id"),)


DELIVERY_STATUSES = ("waiting", "pending", "sending", "delivered", "failed")


class WebhookDelivery(Base):
    """One event to one endpoint: the exact body that is signed, and its retry state.

    ``status``: ``waiting`` (behind an unfinished delivery of the same subject to the same
    endpoint), ``pending`` (due at ``next_attempt_at``), ``sending`` (leased by
    ``lease_owner`` until ``next_attempt_at``; when that passes, any sender may take it over),
    ``delivered`` (a 2xx was received) or ``failed`` (retries exhausted)."""

    __tablename__ = "webhook_deliveries"
    id_prefix: ClassVar[str] = "whd"
    label: ClassVar[str] = "Delivery"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40))
    endpoint_id: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[str | None] = mapped_column(String(40))
    # The event's outbox ``seq`` (0 for test events): per-subject order of deliveries.
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    event_created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_subject_seq", "endpoint_id", "subject_id",
              "event_seq"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )
