"""Wire forms of campaigns and enrollments (SPEC 3, seed page 003): what the API returns and
events carry."""

from __future__ import annotations

from typing import Any

from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.db.base import iso
from callfleet.dialer import rules

# Per-outcome retry settings: outcome -> the suffix of its request/response field
# (``retryDelayMinutesError`` governs the ``failed`` outcome).
SNAKE_RETRY = {"no_answer": "no_answer", "busy": "busy", "voicemail": "voicemail",
               "failed": "error"}

NO_COUNTERS = {"total_contacts": 0, "contacts_called": 0, "contacts_completed": 0,
        "contacts_answered": 0, "contacts_skipped": 0, "contacts_failed": 0}


def campaign_out(c: Campaign, numbers: dict[str, str], count: dict[str, int] | None
                 ) -> dict[str, Any]:
    r = c.retry or {}
    delays = r.get("delays") or {}
    caps = r.get("caps") or {}
    first = (c.from_number_ids or [None])[0]
    out: dict[str, Any] = {
        "id": c.id, "team_id": c.team_id, "assistant_id": c.assistant_id,
        "company_id": c.company_id, "name": c.name, "description": c.description,
        "from_number": numbers.get(first) if first else None,
        "from_number_ids": list(c.from_number_ids or []),
        "status": c.status, "status_reason": c.status_reason,
        "call_window_start": c.call_window_start, "call_window_end": c.call_window_end,
        "call_window_timezone": c.call_window_timezone,
        "call_window_days": list(c.call_window_days or rules.WEEKDAYS),
        "use_contact_timezone": bool(c.use_contact_timezone),
        "max_concurrent_calls": c.max_concurrent_calls,
        "max_attempts_per_contact": c.max_attempts_per_contact,
        "retry_delay_minutes": c.retry_delay_minutes,
    }
    for outcome, suffix in SNAKE_RETRY.items():
        out[f"retry_delay_minutes_{suffix}"] = delays.get(outcome)
    for outcome, suffix in SNAKE_RETRY.items():
        out[f"max_attempts_{suffix}"] = caps.get(outcome)
    out.update({
        "retry_on_error": bool(r.get("retry_on_error", True)),
        "retry_backoff": r.get("backoff", "fixed"),
        "retry_backoff_multiplier": float(r.get("multiplier", 2.0)),
        "retry_backoff_max_minutes": r.get("max_delay_minutes"),
        "audience": c.audience, "no_auto_complete": bool(c.no_auto_complete),
        "voicemail_action": c.voicemail_action, "settings": c.settings or {},
        "scheduled_start_at": iso(c.scheduled_start_at), "started_at": iso(c.started_at),
        "completed_at": iso(c.completed_at), "deleted_at": iso(c.deleted_at),
        "active_calls": c.active_calls,
    })
    out.update(count or NO_COUNTERS)
    out["created_at"] = iso(c.created_at)
    out["updated_at"] = iso(c.updated_at)
    return out



def campaign_event_data(c: Campaign) -> dict[str, Any]:
    return {"campaign": {
        "id": c.id, "team_id": c.team_id, "name": c.name, "status": c.status,
        "status_reason": c.status_reason, "assistant_id": c.assistant_id,
        "company_id": c.company_id, "started_at": iso(c.started_at),
        "completed_at": iso(c.completed_at),
    }}



def enrollment_out(e: Enrollment, first: str | None, last: str | None, phone: str | None
                   ) -> dict[str, Any]:
    return {
        "id": e.id, "campaign_id": e.campaign_id, "contact_id": e.contact_id,
        "first_name": first, "last_name": last, "phone": phone, "status": e.status,
        "priority": e.priority, "attempts": e.attempts,
        "next_attempt_at": iso(e.next_attempt_at), "last_outcome": e.last_outcome,
        "last_call_id": e.last_call_id, "from_number_id": e.from_number_id,
        "reason": e.reason, "created_at": iso(e.created_at), "updated_at": iso(e.updated_at),
    }

