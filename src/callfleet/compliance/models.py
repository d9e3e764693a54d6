from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, UTCDateTime


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

    __table_args__ = (UniqueConstraint("team_id", "phone_number"),)
