"""Request bodies (camelCase) and response shapes (snake_case) of the CRM endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from callfleet.api.schemas import CamelIn

Str200 = Field(default=None, max_length=200)


class CompanyIn(CamelIn):
    team_id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=300)
    website: str | None = Field(default=None, max_length=500)
    industry: str | None = Field(default=None, max_length=200)
    company_size: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=64)
    address_line1: str | None = Field(default=None, max_length=300)
    address_line2: str | None = Field(default=None, max_length=300)
    city: str | None = Field(default=None, max_length=200)
    state: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=40)
    country: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None, max_length=20_000)
    custom_fields: dict[str, Any] | None = None


class ConsentIn(CamelIn):
    """A contact's consent record: what was agreed, where, when, the evidence, and a
    revocation (time and channel)."""

    kind: str | None = Field(default=None, max_length=40,
                             description="prior_express_written | prior_express | none")
    source: str | None = Field(default=None, max_length=200)
    obtained_at: datetime | None = None
    evidence: str | None = Field(default=None, max_length=2000)
    revoked_at: datetime | None = None
    revocation_channel: str | None = Field(default=None, max_length=40)


class ContactIn(CamelIn):
    team_id: str | None = Field(default=None, max_length=64)
    company_id: str | None = Field(default=None, max_length=64)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    phone_secondary: str | None = Field(default=None, max_length=64)
    job_title: str | None = Field(default=None, max_length=300)
    lead_status: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    preferred_contact_method: str | None = Field(default=None, max_length=50)
    do_not_call: bool | None = None
    notes: str | None = Field(default=None, max_length=20_000)
    custom_fields: dict[str, Any] | None = None
    tags: list[str] | None = Field(default=None, max_length=100)
    address_line1: str | None = Field(default=None, max_length=300)
    city: str | None = Field(default=None, max_length=200)
    state: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=40)
    country: str | None = Field(default=None, max_length=64)
    consent: ConsentIn | None = None


class ContactImportIn(CamelIn):
    team_id: str | None = Field(default=None, max_length=64)
    company_id: str | None = Field(default=None, max_length=64)
    # Items are checked row by row by the importer: a non-object row is a row error, not a 400.
    contacts: list[Any] = Field(max_length=100_000)


class CustomFieldIn(CamelIn):
    team_id: str | None = Field(default=None, max_length=64)
    key: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    type: str | None = Field(default=None, max_length=20)
    options: list[str] | None = Field(default=None, max_length=500)
    entity_type: str | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=2000)
    required: bool | None = None


# ---- responses (documentation of what the serializers in service.py produce) ----


class CompanyOut(BaseModel):
    id: str
    team_id: str
    name: str
    website: str | None
    industry: str | None
    company_size: str | None
    phone: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None
    notes: str | None
    custom_fields: dict[str, Any]
    contact_count: int
    created_at: str
    updated_at: str


class ConsentOut(BaseModel):
    kind: str
    source: str | None
    obtained_at: str | None
    evidence: str | None
    revoked_at: str | None
    revocation_channel: str | None


class ContactOut(BaseModel):
    id: str
    team_id: str
    company_id: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    phone_secondary: str | None
    job_title: str | None
    lead_status: str
    source: str | None
    timezone: str | None
    preferred_contact_method: str | None
    do_not_call: bool
    notes: str | None
    custom_fields: dict[str, Any]
    tags: list[str]
    address_line1: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None
    consent: ConsentOut | None
    created_at: str
    updated_at: str


class CustomFieldOut(BaseModel):
    id: str
    team_id: str
    key: str
    name: str
    type: str
    options: list[str] | None
    entity_type: str
    description: str | None
    required: bool
    created_at: str
    updated_at: str


class CompanyEnvelope(BaseModel):
    success: bool = True
    company: CompanyOut


class CompanyList(BaseModel):
    success: bool = True
    companies: list[CompanyOut]
    count: int
    limit: int
    offset: int


class ContactEnvelope(BaseModel):
    success: bool = True
    contact: ContactOut


class ContactEnrollmentOut(BaseModel):
    campaign_id: str
    campaign_name: str
    campaign_status: str
    enrollment_id: str
    status: str
    attempts: int
    last_outcome: str | None
    next_attempt_at: str | None


class ContactDetailOut(ContactOut):
    campaigns: list[ContactEnrollmentOut]
    calls: list[dict[str, Any]]


class ContactDetailEnvelope(BaseModel):
    success: bool = True
    contact: ContactDetailOut


class ContactList(BaseModel):
    success: bool = True
    contacts: list[ContactOut]
    count: int
    limit: int
    offset: int


class CustomFieldEnvelope(BaseModel):
    success: bool = True
    custom_field: CustomFieldOut


class CustomFieldList(BaseModel):
    success: bool = True
    custom_fields: list[CustomFieldOut]
    count: int
    limit: int
    offset: int


class ImportRowError(BaseModel):
    row: int
    error: str


class ImportResult(BaseModel):
    success: bool = True
    imported: int
    updated: int
    skipped: int
    failed: int
    errors: list[ImportRowError]
    errors_truncated: bool = False
