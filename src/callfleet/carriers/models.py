"""Tables of the real carriers: a team's own carrier accounts and the pacing buckets that
hold each carrier account's calls-per-second limit across every worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, UTCDateTime, utcnow


class CarrierAccount(Base):
    """A team's own Twilio or Telnyx account (``PUT /api/team/carriers/{provider}``), used
    for the team's numbers of that provider instead of the deployment's account.

    ``credentials`` is a JSON object encrypted with the deployment key (``callfleet.secrets``);
    ``summary`` holds what may be shown (the account SID, the connection id, masked keys)."""

    __tablename__ = "carrier_accounts"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"),
                                         primary_key=True)
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    credentials: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    calls_per_second: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CarrierPacing(Base):
    """A token bucket per carrier account (``twilio:<account SID>``, ``telnyx:<connection>``):
    calls started per second, shared by every worker (``dialer.rules.pacing_tokens``)."""

    __tablename__ = "carrier_pacing"

    account: Mapped[str] = mapped_column(String(160), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)
