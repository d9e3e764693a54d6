"""Campaign settings as the pure rules' value objects (dialer.rules)."""

from __future__ import annotations

from callfleet.campaigns.models import Campaign
from callfleet.dialer import rules


def retry_policy(c: Campaign) -> rules.RetryPolicy:
    r = c.retry or {}
    return rules.RetryPolicy(
        max_attempts=c.max_attempts_per_contact,
        base_delay_minutes=c.retry_delay_minutes,
        delay_overrides={k: v for k, v in (r.get("delays") or {}).items() if v is not None},
        attempt_caps={k: v for k, v in (r.get("caps") or {}).items() if v is not None},
        retry_on_error=bool(r.get("retry_on_error", True)),
        backoff=r.get("backoff", "fixed"),
        multiplier=float(r.get("multiplier", 2.0)),
        max_delay_minutes=r.get("max_delay_minutes"),
    )


def call_window(c: Campaign, tz: str) -> rules.CallWindow:
    return rules.CallWindow(
        start=rules.parse_hhmm(c.call_window_start),
        end=rules.parse_hhmm(c.call_window_end),
        days=rules.parse_days(c.call_window_days or None),
        tz=tz,
    )


def legal_hours(team_settings: dict[str, str] | None, start: str, end: str) -> rules.LegalHours:
    s = team_settings or {}
    return rules.LegalHours(
        start=rules.parse_hhmm(s.get("legal_hours_start", start)),
        end=rules.parse_hhmm(s.get("legal_hours_end", end)),
    )
