from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, UTCDateTime, utcnow


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Calls in progress across the team's campaigns (see Campaign.active_calls).
    active_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Pacing (calls started per second): token bucket state, see dialer.rules.pacing_tokens.
    pacing_tokens: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    pacing_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped with every change to the team's custom field definitions, so a process that
    # remembers them can check, inside its own write, that they did not change
    # (crm.service.create_contact; migration 0010).
    custom_fields_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """A team's bearer token. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_keys"
    id_prefix: ClassVar[str] = "key"
    label: ClassVar[str] = "API key"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(20))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyRecord(Base):
    """The first response to a create sent with an ``Idempotency-Key`` header."""

    __tablename__ = "idempotency_keys"

    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)
