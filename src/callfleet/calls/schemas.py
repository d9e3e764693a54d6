"""Request and response models of the calls API (the response models document the wire
form ``calls.views.call_out`` writes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from callfleet.api.schemas import CamelIn


class CallIn(CamelIn):
    team_id: str | None = Field(default=None, max_length=64)
    assistant_id: str | None = Field(default=None, max_length=64)
    to_number: str | None = Field(default=None, max_length=64)
    from_number: str | None = Field(default=None, max_length=64)
    contact_id: str | None = Field(default=None, max_length=64)
    metadata: dict[str, Any] | None = None


class CallOut(BaseModel):
    id: str
    team_id: str
    direction: str
    campaign_id: str | None
    contact_id: str | None
    assistant_id: str | None
    from_number: str
    to_number: str
    status: str
    outcome: str | None
    ended_reason: str | None
    attempt: int
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    duration_seconds: float | None
    carrier: str
    carrier_call_id: str | None
    created_at: str


class CallDetailOut(CallOut):
    messages: list[dict[str, Any]]
    transcript: str | None
    analysis: dict[str, Any]
    events: list[dict[str, Any]]
    recording_url: str | None
    metadata: dict[str, Any]


class CallEnvelope(BaseModel):
    success: bool = True
    call: CallDetailOut


class CallCreated(BaseModel):
    success: bool = True
    call: CallOut


class CallList(BaseModel):
    success: bool = True
    calls: list[CallOut]
    count: int
    limit: int
    offset: int


class RecordingLink(BaseModel):
    success: bool = True
    url: str = Field(description="Signed link to the recording; no API key needed.")
    expiresIn: int = Field(description="Seconds until the link stops working.")
