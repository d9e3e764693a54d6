"""Imports every table so ``Base.metadata`` is complete (for Alembic and tests)."""

from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call, CallEvent
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.carriers.sim.models import ClockAnchor, SimCall, SimProfile
from callfleet.compliance.models import (
    ComplianceChange,
    DialDecision,
    DncEntry,
    SuppressedNumber,
    SuppressionList,
)
from callfleet.conversation.models import CallJob
from callfleet.crm.models import Company, Contact, CustomFieldDefinition
from callfleet.db.base import Base
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.models import ApiKey, IdempotencyRecord, Team
from callfleet.webhooks.models import OutboxEvent, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Assistant",
    "Base",
    "Call",
    "CallEvent",
    "CallJob",
    "Campaign",
    "ClockAnchor",
    "Company",
    "ComplianceChange",
    "Contact",
    "CustomFieldDefinition",
    "DialDecision",
    "DncEntry",
    "Enrollment",
    "IdempotencyRecord",
    "OutboxEvent",
    "PhoneNumber",
    "SimCall",
    "SimProfile",
    "SuppressedNumber",
    "SuppressionList",
    "Team",
    "WebhookDelivery",
    "WebhookEndpoint",
]
