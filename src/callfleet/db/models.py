"""Imports every table so ``Base.metadata`` is complete (for Alembic and tests)."""

from callfleet.crm.models import Company, Contact, CustomFieldDefinition
from callfleet.db.base import Base
from callfleet.teams.models import ApiKey, IdempotencyRecord, Team

__all__ = ["Base", "Team", "ApiKey", "IdempotencyRecord", "Company", "Contact",
           "CustomFieldDefinition"]
