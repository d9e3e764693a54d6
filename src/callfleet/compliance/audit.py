"""Reading the dial-decision audit, the waiting contacts by reason, a team's compliance
settings (validated; loosening them is an owner's, logged, choice) and the retention purge."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.campaigns.models import Enrollment
from callfleet.compliance.changes import log_change, require_owner
from callfleet.compliance.decision import REASONS, describe_reason
from callfleet.compliance.dialing import (
    DEFAULT_RETENTION_DAYS,
    TeamCompliance,
    rules_from_json,
    team_compliance,
)
from callfleet.compliance.jurisdiction import MODES
from callfleet.compliance.models import DialDecision
from callfleet.compliance.schedule import DEFAULT_MARGIN
from callfleet.compliance.table import REQUIREMENTS, RuleTable, TableError, parse_rules
from callfleet.crm import fields as F
from callfleet.db.base import iso
from callfleet.errors import bad_request
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal

OUTCOMES = ("allow", "defer", "skip")
#: Reasons the dialer records before any rule is looked at.
DIALER_REASONS = ("no_phone", "do_not_call", "do_not_contact", "team_dnc", "dnc_national_listed")


def decision_out(d: DialDecision) -> dict[str, Any]:
    detail = d.detail or {}
    return {
        "id": d.id, "team_id": d.team_id, "campaign_id": d.campaign_id,
        "enrollment_id": d.enrollment_id, "contact_id": d.contact_id, "call_id": d.call_id,
        "phone": d.phone, "evaluated_at": iso(d.evaluated_at), "outcome": d.outcome,
        "reason": d.reason, "rules_fired": list(d.rules_fired or []),
        "table_version": d.table_version, "table_sha256": detail.get("tableSha256"),
        "purpose": detail.get("purpose"), "jurisdictions": list(d.jurisdictions or []),
        "local_times": list(d.local_times or []), "next_allowed_at": iso(d.next_allowed_at),
        "rules_applied": detail.get("rulesApplied", []), "caps": detail.get("caps", []),
        "waived": detail.get("waived", []), "margin_seconds": detail.get("marginSeconds"),
        "defaulted": bool(detail.get("defaulted")),
    }


async def list_decisions(session: AsyncSession, p: Principal, filters: dict[str, str | None],
                         limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The team's dial decisions, newest first; filters: contactId, campaignId, reason,
    outcome, evaluatedAfter (inclusive), evaluatedBefore (exclusive)."""
    stmt = p.scope.select(DialDecision)
    for key, column, prefix in (("contactId", DialDecision.contact_id, "cont"),
                                ("campaignId", DialDecision.campaign_id, "camp")):
        value = filters.get(key)
        if value:
            if not ids.is_valid(prefix, value):
                raise bad_request(f"{key} is not a valid id", key)
            stmt = stmt.where(column == value)
    reason = filters.get("reason")
    if reason:
        if reason not in REASONS and reason not in DIALER_REASONS:
            raise bad_request("reason must be one of " + ", ".join(REASONS + DIALER_REASONS),
                              "reason")
        stmt = stmt.where(DialDecision.reason == reason)
    outcome = filters.get("outcome")
    if outcome:
        if outcome not in OUTCOMES:
            raise bad_request("outcome must be one of " + ", ".join(OUTCOMES), "outcome")
        stmt = stmt.where(DialDecision.outcome == outcome)
    after = F.query_time(filters.get("evaluatedAfter"), "evaluatedAfter")
    before = F.query_time(filters.get("evaluatedBefore"), "evaluatedBefore")
    if after and before and after >= before:
        raise bad_request("evaluatedAfter must be before evaluatedBefore", "evaluatedAfter")
    if after:
        stmt = stmt.where(DialDecision.evaluated_at >= after)
    if before:
        stmt = stmt.where(DialDecision.evaluated_at < before)
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await session.scalars(stmt.order_by(DialDecision.evaluated_at.desc(),
                                               DialDecision.id.desc())
                                 .limit(limit).offset(offset))
    return [decision_out(d) for d in rows], total


async def waiting_by_reason(session: AsyncSession, campaign_id: str, now: datetime,
                            table: RuleTable) -> list[dict[str, Any]]:
    """Pending enrollments the compliance engine deferred, grouped by reason and the rule that
    fired: ``{"reason": "state_hours", "rule": "US-FL/hours", "count": 42,
    "text": "42 contacts waiting for Florida hours"}``, largest group first."""
    rows = await session.execute(
        select(Enrollment.reason, func.count())
        .where(Enrollment.campaign_id == campaign_id, Enrollment.status == "pending",
               Enrollment.next_attempt_at > now, Enrollment.reason.is_not(None))
        .group_by(Enrollment.reason))
    out = []
    for raw, count in rows:
        reason, _, rule = str(raw).partition(":")
        if reason not in REASONS:
            continue
        text = describe_reason(reason, rule or None, table)
        noun = "contact" if count == 1 else "contacts"
        out.append({"reason": reason, "rule": rule or None, "count": int(count),
                    "text": f"{count} {noun} {text}"})
    out.sort(key=lambda w: (-w["count"], w["reason"], w["rule"] or ""))
    return out


# ---------------------------------------------------------------- settings

SETTING_KEYS = ("default_campaign_purpose", "margin_seconds", "frequency_cap_per_24h",
                "time_rules_for_all_purposes", "attestations", "jurisdiction_mode",
                "disabled_rules", "rules", "blackouts", "retention_days", "business_name",
                "callback_number")


def settings_out(team: Team) -> dict[str, Any]:
    raw = (team.settings or {}).get("compliance") or {}
    tc = TeamCompliance()
    return {
        "default_campaign_purpose": raw.get("default_campaign_purpose",
                                            tc.default_campaign_purpose),
        "margin_seconds": raw.get("margin_seconds", int(DEFAULT_MARGIN.total_seconds())),
        "frequency_cap_per_24h": raw.get("frequency_cap_per_24h"),
        "time_rules_for_all_purposes": raw.get("time_rules_for_all_purposes", True),
        "attestations": raw.get("attestations", []),
        "jurisdiction_mode": raw.get("jurisdiction_mode", "strict"),
        "disabled_rules": raw.get("disabled_rules", []),
        "rules": raw.get("rules", []),
        "blackouts": raw.get("blackouts", []),
        "retention_days": raw.get("retention_days", DEFAULT_RETENTION_DAYS),
        "business_name": raw.get("business_name"),
        "callback_number": raw.get("callback_number"),
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _loosens(key: str, old: Any, new: Any) -> bool:
    """Would this change let a call through that the current settings refuse?"""
    if key == "margin_seconds":
        return int(new) < int(old)
    if key == "frequency_cap_per_24h":
        return old is not None and (new is None or int(new) > int(old))
    if key == "time_rules_for_all_purposes":
        return old and not new
    if key in ("attestations", "disabled_rules"):
        return bool(set(new) - set(old))
    if key == "jurisdiction_mode":
        return new != "strict" and old == "strict"
    if key in ("rules", "blackouts"):
        return bool([r for r in old if r not in new])  # removing one
    if key == "retention_days":
        return int(new) < int(old)
    return False


def _validated(key: str, value: Any, table: RuleTable) -> Any:
    name = f"settings.{_camel(key)}"
    if key == "default_campaign_purpose":
        if value not in ("telemarketing", "informational"):
            raise bad_request(f"{name} must be telemarketing or informational", name)
    elif key == "margin_seconds":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3600:
            raise bad_request(f"{name} must be 0-3600 seconds", name)
    elif key == "frequency_cap_per_24h":
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 1 <= value <= 100):
            raise bad_request(f"{name} must be 1-100 calls or null", name)
    elif key == "time_rules_for_all_purposes":
        if not isinstance(value, bool):
            raise bad_request(f"{name} must be true or false", name)
    elif key == "attestations":
        bad = [a for a in value or [] if a not in REQUIREMENTS or "consent" in a]
        if not isinstance(value, list) or bad:
            raise bad_request(f"{name} may list natural_voice_announcement and "
                              "established_business_relationship", name)
        value = sorted(set(value))
    elif key == "jurisdiction_mode":
        if value not in MODES:
            raise bad_request(f"{name} must be one of {', '.join(MODES)}", name)
    elif key == "disabled_rules":
        unknown = [r for r in value or [] if not isinstance(r, str) or table.rule(r) is None]
        if not isinstance(value, list) or unknown:
            raise bad_request(f"{name} lists unknown rules: {unknown[:5]}", name)
        value = sorted(set(value))
    elif key == "rules":
        try:
            parse_rules(rules_from_json(value or []), table)
        except TableError as exc:
            raise bad_request(f"{name}: {'; '.join(exc.errors[:5])}", name) from None
        if len(value or []) > 100:
            raise bad_request(f"{name}: at most 100 team rules", name)
    elif key == "blackouts":
        value = [_blackout_in(b, table, name) for b in value or []]
    elif key == "business_name":
        value = F.clean_text(value, 200) if isinstance(value, str) else value
        if value is not None and not isinstance(value, str):
            raise bad_request(f"{name} must be text", name)
    elif key == "callback_number":
        try:
            value = F.normalize_phone(value, "US") if value is not None else None
        except ValueError as exc:
            raise bad_request(f"{name} {exc}", name) from None
    elif key == "retention_days" and (
            not isinstance(value, int) or isinstance(value, bool) or not 30 <= value <= 36600):
        raise bad_request(f"{name} must be 30-36600 days", name)
    return value


def _blackout_in(raw: Any, table: RuleTable, name: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise bad_request(f"{name}: each blackout is an object", name)
    jurisdiction = raw.get("jurisdiction")
    if jurisdiction not in table.jurisdictions:
        raise bad_request(f"{name}: unknown jurisdiction {jurisdiction!r}", name)
    start = F.query_time(raw.get("start"), f"{name}.start")
    end = F.query_time(raw.get("end"), f"{name}.end")
    if start is None or end is None or start >= end:
        raise bad_request(f"{name}: start and end are required and start < end", name)
    citation = raw.get("citation")
    if not isinstance(citation, str) or not citation.strip() or len(citation) > 500:
        raise bad_request(f"{name}: a citation (1-500 characters) is required", name)
    return {"id": raw.get("id") or ids.new_id("cchg").replace("cchg_", "blk_"),
            "jurisdiction": jurisdiction, "start": start.isoformat(), "end": end.isoformat(),
            "citation": citation.strip()}


async def update_settings(session: AsyncSession, p: Principal, changes: dict[str, Any],
                          table: RuleTable, now: datetime) -> Team:
    """Apply ``changes`` (snake_case keys of :data:`SETTING_KEYS`; null resets one): a change
    that loosens a check needs an owner key; every change is logged."""
    team = await session.get(Team, p.team_id, with_for_update=True)
    assert team is not None
    current = settings_out(team)
    raw = dict((team.settings or {}).get("compliance") or {})
    for key, value in changes.items():
        if key not in SETTING_KEYS:
            continue
        if value is None and key not in ("frequency_cap_per_24h", "business_name",
                                         "callback_number"):
            value = settings_out(Team(settings={}))[key]
        value = _validated(key, value, table)
        if value == current[key]:
            continue
        loosens = _loosens(key, current[key], value)
        if loosens:
            require_owner(p, f"loosen {_camel(key)}")
        raw[key] = value
        log_change(session, p.team_id, p.key_id, f"set_{key}",
                   {"from": current[key], "to": value, "loosens": loosens}, now)
    settings = dict(team.settings or {})
    settings["compliance"] = raw
    team_compliance(settings, table)  # refuse anything the dialer could not read
    team.settings = settings
    team.updated_at = now
    await session.flush()
    return team


async def purge_decisions(session: AsyncSession, now: datetime, *, batch: int = 5000) -> int:
    """Delete dial decisions older than each team's retention (default five years)."""
    removed = 0
    teams = await session.execute(select(Team.id, Team.settings))  # tenancy: system
    for team_id, settings in teams:
        days = team_compliance(settings).retention_days
        cutoff = now - timedelta(days=days)
        old = select(DialDecision.id).where(
            DialDecision.team_id == team_id,  # tenancy: system
            DialDecision.evaluated_at < cutoff).limit(batch)
        result = await session.execute(delete(DialDecision).where(DialDecision.id.in_(old)))
        removed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return removed
