from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from callfleet.db.base import Base, JSONType, TeamOwned


class Company(TeamOwned, Base):
    __tablename__ = "companies"
    id_prefix: ClassVar[str] = "comp"
    label: ClassVar[str] = "Company"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300))
    website: Mapped[str | None] = mapped_column(String(500))
    industry: Mapped[str | None] = mapped_column(String(200))
    company_size: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    address_line1: Mapped[str | None] = mapped_column(String(300))
    address_line2: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(40))
    country: Mapped[str | None] = mapped_column(String(2))
    notes: Mapped[str | None] = mapped_column(Text)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    name_lower: Mapped[str] = mapped_column(String(300))

    __table_args__ = (
        # Unique so that contacts (team_id, company_id) can reference it (migration 0013).
        Index("uq_companies_team_id_id", "team_id", "id", unique=True),
        Index("ix_companies_team_id_name_lower", "team_id", "name_lower"),
    )


class Contact(TeamOwned, Base):
    __tablename__ = "contacts"
    id_prefix: ClassVar[str] = "cont"
    label: ClassVar[str] = "Contact"

    company_id: Mapped[str] = mapped_column(String(40))
    first_name: Mapped[str] = mapped_column(String(200))
    last_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(32))
    phone_secondary: Mapped[str | None] = mapped_column(String(32))
    job_title: Mapped[str | None] = mapped_column(String(300))
    lead_status: Mapped[str] = mapped_column(String(32), default="new")
    source: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    preferred_contact_method: Mapped[str | None] = mapped_column(String(50))
    do_not_call: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str | None] = mapped_column(Text)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Derived: lower-cased email for dedup, and the text the `search` filter matches
    # (names, email, phone digits). Maintained by crm.service on every write.
    email_lower: Mapped[str | None] = mapped_column(String(320))
    search_text: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        # A contact's company is its team's; deleting the team deletes its companies and so
        # their contacts. PostgreSQL since migration 0013; SQLite databases keep the two
        # single-column foreign keys (team_id -> teams, company_id -> companies) and an
        # index on company_id, as migration 0001 made them.
        ForeignKeyConstraint(["team_id", "company_id"], ["companies.team_id", "companies.id"],
                             ondelete="CASCADE", name="fk_contacts_team_id_company_id_companies"),
        # Counting a team's contacts (migration 0009): the narrowest index with team_id.
        Index("ix_contacts_team_id", "team_id"),
        Index("ix_contacts_team_id_id", "team_id", "id"),
        Index("ix_contacts_team_id_company_id_id", "team_id", "company_id", "id"),
        # leadStatus (+ hasPhone) lists and counts from the index alone (phone included).
        # Migration 0007, docs/decisions/0012-crm-performance.md.
        Index("ix_contacts_team_id_lead_status_id_phone", "team_id", "lead_status", "id",
              "phone"),
        Index("ix_contacts_team_id_phone", "team_id", "phone"),
        Index("ix_contacts_team_id_email_lower", "team_id", "email_lower"),
    )


class CustomFieldDefinition(TeamOwned, Base):
    __tablename__ = "custom_field_definitions"
    id_prefix: ClassVar[str] = "cf"
    label: ClassVar[str] = "Custom field"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    entity_type: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    options: Mapped[list[str] | None] = mapped_column(JSONType)
    description: Mapped[str | None] = mapped_column(Text)
    required: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("team_id", "entity_type", "key"),)
