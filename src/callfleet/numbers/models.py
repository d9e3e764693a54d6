from __future__ import annotations

from typing import ClassVar

from sqlalchemy import ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, TeamOwned


class PhoneNumber(TeamOwned, Base):
    __tablename__ = "phone_numbers"
    id_prefix: ClassVar[str] = "pn"
    label: ClassVar[str] = "Phone number"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(20), default="sim")
    status: Mapped[str] = mapped_column(String(20), default="active")
    assistant_id: Mapped[str | None] = mapped_column(
        ForeignKey("assistants.id", ondelete="SET NULL")
    )
    friendly_name: Mapped[str | None] = mapped_column(String(200))
    country_code: Mapped[str | None] = mapped_column(String(2))
    number_type: Mapped[str] = mapped_column(String(20), default="local")
    monthly_price: Mapped[float | None] = mapped_column(Numeric(10, 2))
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    capabilities: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Where a caller who is not yet a contact is created when this number is called
    # (inbound; migration 0026). None: the team's "Inbound callers" company.
    company_id: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (
        Index("ix_phone_numbers_team_id_id", "team_id", "id"),
        Index("uq_phone_numbers_phone_number", "phone_number", unique=True),
        Index("ix_phone_numbers_assistant_id", "assistant_id"),
    )
