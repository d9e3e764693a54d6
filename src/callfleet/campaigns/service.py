"""Campaigns: configuration, lifecycle (dialer.rules decides the edges), enrollments, run,
dashboard. Services never commit; routes do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.calls.views import call_out
from callfleet.campaigns import enrollments, lifecycle
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.campaigns.policy import retry_policy
from callfleet.campaigns.views import NO_COUNTERS, SNAKE_RETRY, campaign_out, enrollment_out
from callfleet.compliance.audit import waiting_by_reason
from callfleet.compliance.changes import log_change, require_owner
from callfleet.compliance.dialing import team_compliance
from callfleet.compliance.duties import (
    Abandonment,
    assistant_problems,
)
from callfleet.compliance.models import DncEntry
from callfleet.compliance.table import shipped_table
from callfleet.crm import fields as F
from callfleet.crm.models import Company, Contact
from callfleet.db.base import iso, utcnow
from callfleet.dialer import rules
from callfleet.errors import ApiError, bad_request, conflict, not_found
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal
from callfleet.wakeup import notify

DELETED_FILTERS = ("exclude", "include", "only")
AUDIENCES = ("manual", "all_eligible")


# ---------------------------------------------------------------- reading


async def _tallies(session: AsyncSession, campaign_ids: list[str]
                   ) -> dict[str, list[tuple[str, bool, int, int]]]:
    """Each campaign's enrollments counted by (status, answered, attempts): a scan of the
    covering index ``ix_campaign_contacts_tally`` with no expression to evaluate per row
    (docs/decisions/0046-campaign-dashboard-reads.md); a handful of rows per campaign."""
    e = Enrollment
    rows = await session.execute(
        select(e.campaign_id, e.status, e.answered, e.attempts, func.count())
        .where(e.campaign_id.in_(campaign_ids))
        .group_by(e.campaign_id, e.status, e.answered, e.attempts))
    out: dict[str, list[tuple[str, bool, int, int]]] = {}
    for cid, status, answered, attempts, n in rows:
        out.setdefault(cid, []).append((status, answered is True, int(attempts or 0), int(n)))
    return out


def _counters_of(tally: list[tuple[str, bool, int, int]]) -> dict[str, int]:
    total = called = done = answered_n = skipped = failed = 0
    for status, answered, attempts, n in tally:
        total += n
        if attempts > 0:
            called += n
        if status in ("completed", "failed"):
            done += n
        if answered:
            answered_n += n
        if status == "skipped":
            skipped += n
        if status == "failed":
            failed += n
    return {
        "total_contacts": total, "contacts_called": called,
        "contacts_completed": done, "contacts_answered": answered_n,
        "contacts_skipped": skipped, "contacts_failed": failed,
    }


async def counters(session: AsyncSession, campaign_ids: list[str]) -> dict[str, dict[str, int]]:
    """Counters derived from the enrollments (never stored, so never out of date)."""
    if not campaign_ids:
        return {}
    tallies = await _tallies(session, campaign_ids)
    return {cid: _counters_of(t) for cid, t in tallies.items()}


async def _numbers(session: AsyncSession, campaigns: list[Campaign]) -> dict[str, str]:
    wanted = {n for c in campaigns for n in (c.from_number_ids or [])[:1]}
    if not wanted:
        return {}
    rows = await session.execute(
        select(PhoneNumber.id, PhoneNumber.phone_number).where(PhoneNumber.id.in_(wanted)))
    return {k: v for k, v in rows}


async def render_many(session: AsyncSession, campaigns: list[Campaign]) -> list[dict[str, Any]]:
    numbers = await _numbers(session, campaigns)
    counts = await counters(session, [c.id for c in campaigns])
    return [campaign_out(c, numbers, counts.get(c.id)) for c in campaigns]


async def render(session: AsyncSession, c: Campaign) -> dict[str, Any]:
    return (await render_many(session, [c]))[0]


# ---------------------------------------------------------------- validation


def _field(name: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ValueError as exc:
        raise bad_request(f"{name}: {exc}" if ":" not in str(exc) else str(exc), name) from None


def _apply_settings(c: Campaign, data: dict[str, Any]) -> None:
    """Copy validated settings from the request onto the campaign (create and PATCH)."""
    if "name" in data:
        name = F.clean_text(data["name"], 300) if data["name"] is not None else None
        if not name:
            raise bad_request("name is required", "name")
        c.name = name
    if "description" in data:
        c.description = F.clean_text(data["description"], 5000)
    if data.get("call_window_start") is not None:
        c.call_window_start = rules.format_hhmm(
            _field("callWindowStart", rules.parse_hhmm, data["call_window_start"]))
    if data.get("call_window_end") is not None:
        c.call_window_end = rules.format_hhmm(
            _field("callWindowEnd", rules.parse_hhmm, data["call_window_end"]))
    if data.get("call_window_timezone") is not None:
        try:
            tz = F.normalize_timezone(data["call_window_timezone"])
        except ValueError as exc:
            raise bad_request(f"callWindowTimezone {exc}", "callWindowTimezone") from None
        if tz is None:
            raise bad_request("callWindowTimezone is required", "callWindowTimezone")
        c.call_window_timezone = tz
    if "call_window_days" in data:
        days = _field("callWindowDays", rules.parse_days, data["call_window_days"])
        c.call_window_days = [d for d in rules.WEEKDAYS if d in days]
    for key in ("use_contact_timezone", "no_auto_complete"):
        if data.get(key) is not None:
            setattr(c, key, bool(data[key]))
    for key in ("max_concurrent_calls", "max_attempts_per_contact", "retry_delay_minutes"):
        if data.get(key) is not None:
            setattr(c, key, int(data[key]))
    if data.get("audience") is not None:
        if data["audience"] not in AUDIENCES:
            raise bad_request("audience must be manual or all_eligible", "audience")
        c.audience = data["audience"]
    if "voicemail_action" in data:
        va = data["voicemail_action"]
        if va is not None and va not in ("leave_message", "hangup"):
            raise bad_request("voicemailAction must be leave_message or hangup",
                              "voicemailAction")
        c.voicemail_action = va
    if "settings" in data:
        c.settings = data["settings"] or {}
    retry = dict(c.retry or {})
    delays = dict(retry.get("delays") or {})
    caps = dict(retry.get("caps") or {})
    for outcome, snake in SNAKE_RETRY.items():
        if f"retry_delay_minutes_{snake}" in data:
            delays[outcome] = data[f"retry_delay_minutes_{snake}"]
        if f"max_attempts_{snake}" in data:
            caps[outcome] = data[f"max_attempts_{snake}"]
    retry["delays"], retry["caps"] = delays, caps
    if data.get("retry_on_error") is not None:
        retry["retry_on_error"] = bool(data["retry_on_error"])
    if data.get("retry_backoff") is not None:
        if data["retry_backoff"] not in ("fixed", "exponential"):
            raise bad_request("retryBackoff must be fixed or exponential", "retryBackoff")
        retry["backoff"] = data["retry_backoff"]
    if data.get("retry_backoff_multiplier") is not None:
        retry["multiplier"] = float(data["retry_backoff_multiplier"])
    if "retry_backoff_max_minutes" in data:
        retry["max_delay_minutes"] = data["retry_backoff_max_minutes"]
    c.retry = retry
    try:
        retry_policy(c)
    except ValueError as exc:
        raise bad_request(f"Invalid retry settings: {exc}", "retry") from None


PURPOSES = ("telemarketing", "informational")
#: The abandonment rate on the dashboard reads at most this many answered calls (the newest).
ABANDON_SAMPLE = 20_000


async def _apply_compliance(session: AsyncSession, p: Principal, c: Campaign,
                            data: dict[str, Any], now: datetime, *, creating: bool) -> None:
    """The campaign's purpose (default: the team's ``default_campaign_purpose``, itself
    ``informational`` until the team sets it) and its consent check, which only an owner may
    turn off; turning it off or on is logged (compliance.changes)."""
    purpose = data.get("purpose")
    if purpose is not None:
        if purpose not in PURPOSES:
            raise bad_request("purpose must be telemarketing or informational", "purpose")
        c.purpose = purpose
    elif creating:
        team = await session.get(Team, p.team_id)
        c.purpose = team_compliance(team.settings if team else None).default_campaign_purpose
    wanted = data.get("consent_check")
    if wanted is None or (not creating and bool(wanted) == bool(c.consent_check)):
        if creating:
            c.consent_check = True
        return
    if not wanted:
        require_owner(p, "turn a campaign's consent check off")
    c.consent_check = bool(wanted)
    log_change(session, p.team_id, p.key_id,
               "consent_check_on" if wanted else "consent_check_off",
               {"campaign_id": c.id, "purpose": c.purpose}, now)


async def check_refs(session: AsyncSession, p: Principal, c: Campaign) -> None:
    """The assistant can dial out and every caller-ID number is an active number of the
    team assigned to it; the company is the team's."""
    assistant = await session.get(Assistant, c.assistant_id)
    if assistant is None or assistant.deleted_at is not None or not ids.is_valid(
            "asst", c.assistant_id):
        raise ApiError(404, "Assistant not found", {"assistantId": "Assistant not found"})
    p.scope.check(assistant, "Forbidden: assistantId belongs to another team")
    if not assistant.outbound_enabled:
        raise bad_request("The assistant has outbound calling disabled", "assistantId")
    company = await session.get(Company, c.company_id)
    if company is None:
        raise ApiError(404, "Company not found", {"companyId": "Company not found"})
    p.scope.check(company, "Forbidden: companyId belongs to another team")
    wanted = list(c.from_number_ids or [])
    if not wanted:
        raise bad_request("fromNumberIds must list at least one phone number id",
                          "fromNumberIds")
    if len(set(wanted)) != len(wanted):
        raise bad_request("fromNumberIds has duplicates", "fromNumberIds")
    bad = [n for n in wanted if not ids.is_valid("pn", n)]
    if bad:
        raise bad_request(f"fromNumberIds has invalid ids: {', '.join(bad[:5])}",
                          "fromNumberIds")
    rows = await p.scope.get_many(
        session, PhoneNumber, wanted,
        forbidden_error="Forbidden: fromNumberIds include another team's number")
    missing = [n for n in wanted if n not in rows]
    if missing:
        raise ApiError(404, f"Phone numbers not found: {', '.join(missing[:10])}",
                       {"fromNumberIds": "unknown phone number ids"})
    inactive = [n for n in wanted if rows[n].status != "active"]
    if inactive:
        raise bad_request(f"Phone numbers are not active: {', '.join(inactive)}",
                          "fromNumberIds")
    unassigned = [n for n in wanted if rows[n].assistant_id != c.assistant_id]
    if unassigned:
        raise bad_request(
            "Phone numbers are not assigned to the assistant: " + ", ".join(unassigned),
            "fromNumberIds")
    if c.purpose == "telemarketing":
        team = await session.get(Team, p.team_id)
        raw = ((team.settings or {}) if team else {}).get("compliance") or {}
        problems = assistant_problems(
            assistant.first_message, business_name=raw.get("business_name") or (
                team.name if team else None),
            callback_number=raw.get("callback_number"),
            recording=bool(assistant.recording_enabled))
        if problems:
            raise bad_request("An AI-voice telemarketing campaign's assistant: "
                              + "; ".join(problems), "assistantId")


# ---------------------------------------------------------------- CRUD


async def create_campaign(session: AsyncSession, p: Principal, data: dict[str, Any],
                          now: datetime) -> dict[str, Any]:
    for key, camel in (("assistant_id", "assistantId"), ("company_id", "companyId"),
                       ("name", "name")):
        if not data.get(key):
            raise bad_request(f"{camel} is required", camel)
    if data.get("from_number_ids") is None:
        raise bad_request("fromNumberIds is required", "fromNumberIds")
    if not ids.is_valid("asst", data["assistant_id"]):
        raise bad_request("assistantId is not a valid assistant id", "assistantId")
    if not ids.is_valid("comp", data["company_id"]):
        raise bad_request("companyId is not a valid company id", "companyId")
    c = Campaign(
        id=ids.new_id("camp"), team_id=p.team_id, assistant_id=data["assistant_id"],
        company_id=data["company_id"], from_number_ids=list(data["from_number_ids"]),
        name="", status="draft", call_window_start="09:00", call_window_end="17:00",
        call_window_timezone="America/New_York", call_window_days=list(rules.WEEKDAYS),
        use_contact_timezone=True, max_concurrent_calls=3, max_attempts_per_contact=3,
        retry_delay_minutes=60, retry={}, audience="manual", no_auto_complete=False,
        settings={}, active_calls=0, created_at=utcnow(), updated_at=utcnow(),
    )
    _apply_settings(c, data)
    await _apply_compliance(session, p, c, data, now, creating=True)
    await check_refs(session, p, c)
    c.scheduled_start_at = _aware(data.get("scheduled_start_at"))
    lifecycle.reschedule(session, c, now)
    session.add(c)
    notify(session, "dialer")  # a scheduled start, or enrollments of all_eligible
    await session.flush()
    if c.audience == "all_eligible":
        await enrollments.enroll_company_contacts(session, c, now)
    return await render(session, c)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def owned(session: AsyncSession, p: Principal, campaign_id: str, *,
                for_update: bool = False, include_deleted: bool = False) -> Campaign:
    c = await p.scope.get(session, Campaign, campaign_id, for_update=for_update)
    if c.deleted_at is not None and not include_deleted:
        raise not_found("Campaign")
    return c


async def list_campaigns(
    session: AsyncSession, p: Principal, *, status: str | None, assistant_id: str | None,
    deleted: str | None, limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(Campaign)
    if status:
        if status not in rules.CAMPAIGN_STATUSES:
            raise bad_request("status must be one of " + ", ".join(rules.CAMPAIGN_STATUSES),
                              "status")
        stmt = stmt.where(Campaign.status == status)
    if assistant_id:
        if not ids.is_valid("asst", assistant_id):
            raise bad_request("assistantId is not a valid assistant id", "assistantId")
        stmt = stmt.where(Campaign.assistant_id == assistant_id)
    mode = deleted or "exclude"
    if mode not in DELETED_FILTERS:
        raise bad_request("deleted must be exclude, include or only", "deleted")
    if mode == "exclude":
        stmt = stmt.where(Campaign.deleted_at.is_(None))
    elif mode == "only":
        stmt = stmt.where(Campaign.deleted_at.is_not(None))
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = list(await session.scalars(stmt.order_by(Campaign.id.desc()).limit(limit)
                                      .offset(offset)))
    return await render_many(session, rows), total


SETTINGS_KEYS = frozenset((
    "assistant_id", "company_id", "from_number_ids", "name", "description",
    "scheduled_start_at", "call_window_start", "call_window_end", "call_window_timezone",
    "call_window_days", "use_contact_timezone", "max_concurrent_calls",
    "max_attempts_per_contact", "retry_delay_minutes", "retry_delay_minutes_no_answer",
    "retry_delay_minutes_busy", "retry_delay_minutes_voicemail", "retry_delay_minutes_error",
    "max_attempts_no_answer", "max_attempts_busy", "max_attempts_voicemail",
    "max_attempts_error", "retry_on_error", "retry_backoff", "retry_backoff_multiplier",
    "retry_backoff_max_minutes", "audience", "no_auto_complete", "voicemail_action",
    "settings", "purpose", "consent_check",
))


async def update_campaign(session: AsyncSession, p: Principal, campaign_id: str,
                          data: dict[str, Any], now: datetime) -> dict[str, Any]:
    c = await owned(session, p, campaign_id, for_update=True)
    changes = {k: v for k, v in data.items() if k in SETTINGS_KEYS}
    if changes:
        if c.status == "running":
            raise conflict("Pause the campaign before changing its settings")
        if c.status in ("completed", "cancelled"):
            raise conflict(f"A {c.status} campaign cannot be changed")
        for key, camel, prefix, label in (("assistant_id", "assistantId", "asst", "assistant"),
                                          ("company_id", "companyId", "comp", "company")):
            if changes.get(key) is not None and not ids.is_valid(prefix, changes[key]):
                raise bad_request(f"{camel} is not a valid {label} id", camel)
        for key in ("assistant_id", "company_id", "from_number_ids"):
            if key in changes:
                if changes[key] is None:
                    raise bad_request(f"{key} cannot be null", key)
                setattr(c, key, changes[key] if key != "from_number_ids"
                        else list(changes[key]))
        _apply_settings(c, changes)
        await _apply_compliance(session, p, c, changes, now, creating=False)
        with session.no_autoflush:  # an unknown id is a 404 here, not a foreign key error
            await check_refs(session, p, c)
        if "scheduled_start_at" in changes:
            c.scheduled_start_at = _aware(changes["scheduled_start_at"])
            lifecycle.reschedule(session, c, now)
        c.updated_at = utcnow()
        notify(session, "dialer")  # windows, limits or the schedule may have changed
    if data.get("status") is not None and data["status"] != c.status:
        await lifecycle.transition(session, c, data["status"], now)
    await session.flush()
    return await render(session, c)


async def delete_campaign(session: AsyncSession, p: Principal, campaign_id: str) -> None:
    c = await owned(session, p, campaign_id, for_update=True)
    if c.status not in ("draft", "cancelled"):
        raise conflict(f"Only draft or cancelled campaigns can be deleted (this one is "
                       f"{c.status}); cancel it first")
    c.deleted_at = utcnow()
    c.updated_at = utcnow()


# ---------------------------------------------------------------- enrollments


async def add_contacts(session: AsyncSession, p: Principal, campaign_id: str,
                       contact_ids: list[str], priority: int | None) -> dict[str, Any]:
    c = await owned(session, p, campaign_id, for_update=True)
    if c.status in ("completed", "cancelled"):
        raise conflict(f"Contacts cannot be added to a {c.status} campaign")
    wanted = list(dict.fromkeys(contact_ids))
    malformed = [i for i in wanted if not ids.is_valid("cont", i)]
    found: dict[str, tuple[str | None, bool, str, bool]] = {}
    good = [i for i in wanted if i not in malformed]
    listed = p.scope.exists(DncEntry, DncEntry.phone_number == Contact.phone,
                            DncEntry.removed_at.is_(None))
    for start in range(0, len(good), 900):
        chunk = good[start:start + 900]
        rows = await session.execute(
            p.scope.select(Contact.id, Contact.phone, Contact.do_not_call, Contact.lead_status,
                           listed).where(Contact.id.in_(chunk)))
        for cid, phone, dnc, lead, on in rows:
            found[cid] = (phone, bool(dnc), lead, bool(on))
    unknown = malformed + [i for i in good if i not in found]
    if unknown:
        raise ApiError(404, f"Contacts not found: {', '.join(unknown[:20])}"
                       + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""),
                       {"contactIds": f"{len(unknown)} unknown contact ids"})
    existing: set[str] = set()
    for start in range(0, len(good), 900):
        chunk = good[start:start + 900]
        existing.update(await session.scalars(
            select(Enrollment.contact_id).where(Enrollment.campaign_id == c.id,
                                                Enrollment.contact_id.in_(chunk))))
    now = utcnow()
    rows_to_add = []
    added = skipped = 0
    for cid in good:
        if cid in existing:
            continue
        phone, dnc, lead, on = found[cid]
        reason = (enrollments.permanent_skip_reason(phone, dnc, lead, on)
                  if (dnc or lead == "do_not_contact" or on) else None)
        rows_to_add.append(enrollments.new_row(p.team_id, c.id, cid, now,
                                               priority=priority or 0, skip_reason=reason))
        if reason:
            skipped += 1
        else:
            added += 1
    if rows_to_add:
        await session.execute(insert(Enrollment), rows_to_add)
        notify(session, "dialer")
    c.updated_at = now
    return {"success": True, "added": added, "skipped": skipped,
            "already_enrolled": len(existing)}


async def list_enrollments(session: AsyncSession, p: Principal, campaign_id: str,
                           status: str | None, limit: int, offset: int
                           ) -> tuple[list[dict[str, Any]], int]:
    c = await owned(session, p, campaign_id, include_deleted=True)
    stmt = (p.scope.select(Enrollment, Contact.first_name, Contact.last_name, Contact.phone)
            .join(Contact, Contact.id == Enrollment.contact_id)
            .where(Enrollment.campaign_id == c.id))
    if status:
        if status not in rules.ENROLLMENT_STATUSES:
            raise bad_request("status must be one of " + ", ".join(rules.ENROLLMENT_STATUSES),
                              "status")
        stmt = stmt.where(Enrollment.status == status)
    total = int(await session.scalar(
        select(func.count()).select_from(stmt.with_only_columns(Enrollment.id).subquery())
    ) or 0)
    rows = await session.execute(stmt.order_by(Enrollment.id).limit(limit).offset(offset))
    return [enrollment_out(e, f, ln, ph) for e, f, ln, ph in rows], total


# ---------------------------------------------------------------- dashboard


async def dashboard(session: AsyncSession, p: Principal, campaign_id: str, now: datetime
                    ) -> dict[str, Any]:
    c = await owned(session, p, campaign_id, include_deleted=True)
    tally = (await _tallies(session, [c.id])).get(c.id, [])
    by_status: dict[str, int] = {}
    for status, _answered, _attempts, n in tally:
        by_status[status] = by_status.get(status, 0) + n
    by_outcome: dict[str, int] = dict(list(await session.execute(
        select(Call.outcome, func.count()).where(Call.campaign_id == c.id,
                                                 Call.outcome.is_not(None))
        .group_by(Call.outcome))))
    count = _counters_of(tally) if tally else NO_COUNTERS
    called = count["contacts_called"]
    total = count["total_contacts"]
    queue = await session.execute(
        select(Enrollment, Contact.first_name, Contact.last_name, Contact.phone)
        .join(Contact, Contact.id == Enrollment.contact_id)
        .where(Enrollment.campaign_id == c.id, Enrollment.status == "pending")
        .order_by(Enrollment.priority.desc(), Enrollment.next_attempt_at.asc().nulls_first(),
                  Enrollment.id).limit(10))
    recent = list(await session.scalars(
        select(Call).where(Call.campaign_id == c.id).order_by(Call.id.desc()).limit(10)))
    since = now - timedelta(hours=1)
    ended_last_hour = int(await session.scalar(
        select(func.count()).select_from(Call)
        .where(Call.campaign_id == c.id, Call.ended_at >= since)) or 0)
    remaining = by_status.get("pending", 0) + by_status.get("calling", 0)
    eta = None
    if c.status == "running" and remaining and ended_last_hour:
        eta = iso(now + timedelta(hours=remaining / ended_last_hour))
    return {
        "campaign_id": c.id, "status": c.status, "status_reason": c.status_reason,
        "now": iso(now),
        "enrollments_by_status": {s: by_status.get(s, 0) for s in rules.ENROLLMENT_STATUSES},
        "calls_by_outcome": {o: by_outcome.get(o, 0) for o in rules.OUTCOMES},
        **count,
        "answer_rate": round(count["contacts_answered"] / called, 4) if called else 0.0,
        "completion_rate": round(count["contacts_completed"] / total, 4) if total else 0.0,
        "active_calls": c.active_calls,
        "max_concurrent_calls": c.max_concurrent_calls,
        "next_in_queue": [enrollment_out(e, f, ln, ph) for e, f, ln, ph in queue],
        "recent_calls": [call_out(x) for x in recent],
        "calls_last_hour": ended_last_hour,
        "estimated_completion_at": eta,
        "purpose": c.purpose or "informational",
        "consent_check": c.consent_check is not False,
        "waiting_by_reason": await waiting_by_reason(session, c.id, now, shipped_table()),
        "abandonment": (await _abandonment(session, c.id, now)).as_dict(),
    }


async def _abandonment(session: AsyncSession, campaign_id: str, now: datetime) -> Abandonment:
    """The 30-day abandonment of the campaign's latest ``ABANDON_SAMPLE`` answered calls: a
    grouped count of the greeting judged when each call's messages were written
    (``Call.greeting``, ``compliance.duties.greeting``), read from
    ``ix_calls_campaign_answered_greeting`` alone (docs/decisions/0048)."""
    sample = (select(Call.greeting)
              .where(Call.campaign_id == campaign_id,
                     Call.answered_at >= now - timedelta(days=30),
                     Call.outcome != "voicemail")
              .order_by(Call.answered_at.desc()).limit(ABANDON_SAMPLE).subquery())
    counts = {str(k): int(n) for k, n in await session.execute(
        select(sample.c.greeting, func.count()).group_by(sample.c.greeting))}
    answered = sum(counts.values())
    return Abandonment(answered, answered - counts.get("on_time", 0))

