"""Request bodies (camelCase) and response shapes (snake_case) of the webhook endpoints."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from callfleet.api.schemas import CamelIn
from callfleet.webhooks.outbox import EVENT_TYPES


def check_url(value: str | None) -> str | None:
    if value is None:
        return None
    url = value.strip()
    if not url:
        raise ValueError("url is required")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise ValueError("url is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("url must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("url must name a host")
    if port == 0:
        raise ValueError("url has an invalid port")
    if parts.fragment:
        raise ValueError("url must not have a #fragment")
    return url


def check_events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError('events must list at least one event type, or ["*"] for all')
    out: list[str] = []
    for item in value:
        if item != "*" and item not in EVENT_TYPES:
            raise ValueError(f"unknown event type {item[:80]!r}; one of: *, "
                             + ", ".join(EVENT_TYPES))
        if item not in out:
            out.append(item)
    return ["*"] if "*" in out else out


def check_secret(value: str | None) -> str | None:
    if value is None:
        return None
    if not 16 <= len(value) <= 200:
        raise ValueError("secret must be 16 to 200 characters")
    if not all(33 <= ord(c) <= 126 for c in value):
        raise ValueError("secret must be printable ASCII without spaces")
    return value


class WebhookIn(CamelIn):
    """Create and PATCH body. On PATCH only the keys sent change; sending ``secret`` replaces
    the signing secret (at once: deliveries from then on are signed with the new one)."""

    team_id: str | None = Field(default=None, max_length=64)
    account_slug: str | None = Field(default=None, max_length=100)
    url: str | None = Field(default=None, max_length=2048,
                            description="http:// or https:// URL that receives the events.")
    events: list[str] | None = Field(
        default=None, max_length=50,
        description='Event types to receive, or ["*"] (the default) for every type.')
    secret: str | None = Field(
        default=None, description="Signing secret (16-200 printable characters); generated "
        "(whsec_...) when not given. Shown in full only in the create response.")
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return check_url(v)

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str] | None) -> list[str] | None:
        return check_events(v)

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        return check_secret(v)


class WebhookOut(BaseModel):
    id: str
    team_id: str
    url: str
    description: str | None
    events: list[str]
    enabled: bool
    secret: str = Field(description="Masked (whsec_****abcd) except in the create response.")
    created_at: str
    updated_at: str


class WebhookEnvelope(BaseModel):
    success: bool = True
    webhook: WebhookOut


class WebhookList(BaseModel):
    success: bool = True
    webhooks: list[WebhookOut]
    count: int
    limit: int
    offset: int


class AttemptOut(BaseModel):
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int
    response: str | None


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    team_id: str
    event_id: str
    event_type: str
    subject_id: str | None
    status: str = Field(description="pending, sending, delivered or failed")
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    updated_at: str
    delivered_at: str | None
    attempt_log: list[AttemptOut]
    payload: dict[str, Any]


class DeliveryEnvelope(BaseModel):
    success: bool = True
    delivery: DeliveryOut


class DeliveryList(BaseModel):
    success: bool = True
    deliveries: list[DeliveryOut]
    count: int
    limit: int
    offset: int
