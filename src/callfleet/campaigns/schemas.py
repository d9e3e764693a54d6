"""Campaign request bodies (camelCase, seed page 003) and response documentation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from callfleet.api.schemas import CamelIn


class CampaignIn(CamelIn):
    team_id: str | None = Field(default=None, max_length=64)
    assistant_id: str | None = Field(default=None, max_length=64)
    company_id: str | None = Field(default=None, max_length=64)
    from_number_ids: list[str] | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=5000)
    scheduled_start_at: datetime | None = None
    call_window_start: str | None = Field(default=None, max_length=8)
    call_window_end: str | None = Field(default=None, max_length=8)
    call_window_timezone: str | None = Field(default=None, max_length=64)
    call_window_days: list[str] | None = Field(default=None, max_length=7)
    use_contact_timezone: bool | None = None
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=10_000)
    max_attempts_per_contact: int | None = Field(default=None, ge=1, le=50)
    retry_delay_minutes: int | None = Field(default=None, ge=0, le=43_200)
    retry_delay_minutes_no_answer: int | None = Field(default=None, ge=0, le=43_200)
    retry_delay_minutes_busy: int | None = Field(default=None, ge=0, le=43_200)
    retry_delay_minutes_voicemail: int | None = Field(default=None, ge=0, le=43_200)
    retry_delay_minutes_error: int | None = Field(default=None, ge=0, le=43_200)
    max_attempts_no_answer: int | None = Field(default=None, ge=1, le=50)
    max_attempts_busy: int | None = Field(default=None, ge=1, le=50)
    max_attempts_voicemail: int | None = Field(default=None, ge=1, le=50)
    max_attempts_error: int | None = Field(default=None, ge=1, le=50)
    retry_on_error: bool | None = None
    retry_backoff: str | None = Field(default=None, max_length=20)
    retry_backoff_multiplier: float | None = Field(default=None, ge=1.0, le=10.0)
    retry_backoff_max_minutes: int | None = Field(default=None, ge=1, le=43_200)
    audience: str | None = Field(default=None, max_length=20)
    no_auto_complete: bool | None = None
    voicemail_action: str | None = Field(default=None, max_length=20)
    settings: dict[str, Any] | None = None
    status: str | None = Field(default=None, max_length=20)
    purpose: str | None = Field(default=None, max_length=20,
                                description="telemarketing | informational (default: the "
                                            "team's defaultCampaignPurpose)")
    consent_check: bool | None = Field(
        default=None, description="false (owner keys only, logged): an AI-voice "
        "telemarketing campaign may call contacts without prior express written consent")


class AddContactsIn(CamelIn):
    contact_ids: list[str] = Field(max_length=10_000)
    priority: int | None = Field(default=None, ge=-1000, le=1000)


class RunIn(CamelIn):
    account_slug: str | None = Field(default=None, max_length=64)
    team_id: str | None = Field(default=None, max_length=64)
    max_calls: int | None = Field(default=None, ge=1, le=10_000)
    dry_run: bool = False


class CampaignOut(BaseModel):
    id: str
    team_id: str
    assistant_id: str
    company_id: str
    name: str
    description: str | None
    from_number: str | None
    from_number_ids: list[str]
    status: str
    status_reason: str | None
    call_window_start: str
    call_window_end: str
    call_window_timezone: str
    call_window_days: list[str]
    use_contact_timezone: bool
    max_concurrent_calls: int
    max_attempts_per_contact: int
    retry_delay_minutes: int
    retry_delay_minutes_no_answer: int | None
    retry_delay_minutes_busy: int | None
    retry_delay_minutes_voicemail: int | None
    retry_delay_minutes_error: int | None
    max_attempts_no_answer: int | None
    max_attempts_busy: int | None
    max_attempts_voicemail: int | None
    max_attempts_error: int | None
    retry_on_error: bool
    retry_backoff: str
    retry_backoff_multiplier: float
    retry_backoff_max_minutes: int | None
    audience: str
    no_auto_complete: bool
    voicemail_action: str | None
    settings: dict[str, Any]
    scheduled_start_at: str | None
    started_at: str | None
    completed_at: str | None
    deleted_at: str | None
    active_calls: int
    purpose: str
    consent_check: bool
    total_contacts: int
    contacts_called: int
    contacts_completed: int
    contacts_answered: int
    contacts_skipped: int
    contacts_failed: int
    created_at: str
    updated_at: str


class CampaignEnvelope(BaseModel):
    success: bool = True
    campaign: CampaignOut


class CampaignList(BaseModel):
    success: bool = True
    campaigns: list[CampaignOut]
    count: int
    limit: int
    offset: int


class AddContactsOut(BaseModel):
    success: bool = True
    added: int
    skipped: int
    already_enrolled: int


class RunOut(BaseModel):
    success: bool = True
    started: int
    failed: int
    calls: list[dict[str, Any]]
    errors: list[str]
    message: str
    dryRun: bool
    purpose: str


class EnrollmentOut(BaseModel):
    id: str
    campaign_id: str
    contact_id: str
    first_name: str | None
    last_name: str | None
    phone: str | None
    status: str
    priority: int
    attempts: int
    next_attempt_at: str | None
    last_outcome: str | None
    last_call_id: str | None
    from_number_id: str | None
    reason: str | None
    created_at: str
    updated_at: str


class EnrollmentList(BaseModel):
    success: bool = True
    contacts: list[EnrollmentOut]
    count: int
    limit: int
    offset: int


class DashboardOut(BaseModel):
    success: bool = True
    dashboard: dict[str, Any]
