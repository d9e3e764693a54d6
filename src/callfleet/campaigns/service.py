"""Campaigns: configuration, lifecycle (dialer.rules decides the edges), enrollments, run,
dashboard. Services never commit; routes do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.api.errors import ApiError, bad_request, conflict, not_found
from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.compliance.models import DncEntry
from callfleet.crm import fields as F
from callfleet.crm.models import Company, Contact
from callfleet.db.base import iso, utcnow
from callfleet.dialer import rules
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.principal import Principal, get_owned, scoped
from callfleet.wakeup import notify
from callfleet.webhooks.outbox import emit

# Per-outcome retry settings: outcome -> the suffix of its request/response field
# (``retryDelayMinutesError`` governs the ``failed`` outcome).
SNAKE_RETRY = {"no_answer": "no_answer", "busy": "busy", "voicemail": "voicemail",
               "failed": "error"}
DELETED_FILTERS = ("exclude", "include", "only")
AUDIENCES = ("manual", "all_eligible")
ERRORS_LISTED = 100


# ---------------------------------------------------------------- serializers


async def counters(session: AsyncSession, campaign_ids: list[str]) -> dict[str, dict[str, int]]:
    """Counters derived from the enrollments (never stored, so never out of date)."""
    if not campaign_ids:
        return {}
    e = Enrollment
    rows = await session.execute(
        select(
            e.campaign_id,
            func.count(),
            func.sum(case((e.attempts > 0, 1), else_=0)),
            func.sum(case((e.status.in_(("completed", "failed")), 1), else_=0)),
            func.sum(case((e.answered.is_(True), 1), else_=0)),
            func.sum(case((e.status == "skipped", 1), else_=0)),
            func.sum(case((e.status == "failed", 1), else_=0)),
        ).where(e.campaign_id.in_(campaign_ids)).group_by(e.campaign_id)
    )
    out = {}
    for cid, total, called, done, answered, skipped, failed in rows:
        out[cid] = {
            "total_contacts": int(total or 0), "contacts_called": int(called or 0),
            "contacts_completed": int(done or 0), "contacts_answered": int(answered or 0),
            "contacts_skipped": int(skipped or 0), "contacts_failed": int(failed or 0),
        }
    return out


ZERO = {"total_contacts": 0, "contacts_called": 0, "contacts_completed": 0,
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
    out.update(count or ZERO)
    out["created_at"] = iso(c.created_at)
    out["updated_at"] = iso(c.updated_at)
    return out


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
    from callfleet.campaigns.policy import retry_policy

    try:
        retry_policy(c)
    except ValueError as exc:
        raise bad_request(f"Invalid retry settings: {exc}", "retry") from None


async def _check_refs(session: AsyncSession, p: Principal, c: Campaign) -> None:
    """The assistant can dial out and every caller-ID number is an active number of the
    team assigned to it; the company is the team's."""
    assistant = await session.get(Assistant, c.assistant_id)
    if assistant is None or assistant.deleted_at is not None or not ids.is_valid(
            "asst", c.assistant_id):
        raise ApiError(404, "Assistant not found", {"assistantId": "Assistant not found"})
    if assistant.team_id != p.team_id:
        raise ApiError(403, "Forbidden: assistantId belongs to another team")
    if not assistant.outbound_enabled:
        raise bad_request("The assistant has outbound calling disabled", "assistantId")
    company = await session.get(Company, c.company_id)
    if company is None:
        raise ApiError(404, "Company not found", {"companyId": "Company not found"})
    if company.team_id != p.team_id:
        raise ApiError(403, "Forbidden: companyId belongs to another team")
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
    rows = {n.id: n for n in await session.scalars(
        select(PhoneNumber).where(PhoneNumber.id.in_(wanted)))}
    missing = [n for n in wanted if n not in rows]
    if missing:
        raise ApiError(404, f"Phone numbers not found: {', '.join(missing[:10])}",
                       {"fromNumberIds": "unknown phone number ids"})
    if any(rows[n].team_id != p.team_id for n in wanted):
        raise ApiError(403, "Forbidden: fromNumberIds include another team's number")
    inactive = [n for n in wanted if rows[n].status != "active"]
    if inactive:
        raise bad_request(f"Phone numbers are not active: {', '.join(inactive)}",
                          "fromNumberIds")
    unassigned = [n for n in wanted if rows[n].assistant_id != c.assistant_id]
    if unassigned:
        raise bad_request(
            "Phone numbers are not assigned to the assistant: " + ", ".join(unassigned),
            "fromNumberIds")


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
    await _check_refs(session, p, c)
    start = _aware(data.get("scheduled_start_at"))
    if start is not None:
        c.scheduled_start_at = start
        if start > now:
            c.status = "scheduled"
    session.add(c)
    notify(session, "dialer")  # a scheduled start, or enrollments of all_eligible
    await session.flush()
    if c.audience == "all_eligible":
        from callfleet.dialer.engine import enroll_company_contacts

        await enroll_company_contacts(session, c, now)
    return await render(session, c)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def owned(session: AsyncSession, p: Principal, campaign_id: str, *,
                for_update: bool = False, include_deleted: bool = False) -> Campaign:
    c = await get_owned(session, Campaign, campaign_id, p, prefix="camp", label="Campaign",
                        for_update=for_update)
    if c.deleted_at is not None and not include_deleted:
        raise not_found("Campaign")
    return c


async def list_campaigns(
    session: AsyncSession, p: Principal, *, status: str | None, assistant_id: str | None,
    deleted: str | None, limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:
    stmt = scoped(Campaign, p)
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
    "settings",
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
        with session.no_autoflush:  # an unknown id is a 404 here, not a foreign key error
            await _check_refs(session, p, c)
        if "scheduled_start_at" in changes:
            c.scheduled_start_at = _aware(changes["scheduled_start_at"])
            if c.status in ("draft", "scheduled"):
                c.status = ("scheduled" if c.scheduled_start_at and c.scheduled_start_at > now
                            else "draft")
        c.updated_at = utcnow()
        notify(session, "dialer")  # windows, limits or the schedule may have changed
    if data.get("status") is not None and data["status"] != c.status:
        await transition(session, c, data["status"], now)
    await session.flush()
    return await render(session, c)


async def transition(session: AsyncSession, c: Campaign, target: str, now: datetime,
                     reason: str | None = None) -> None:
    if target not in rules.CAMPAIGN_STATUSES:
        raise bad_request("status must be one of " + ", ".join(rules.CAMPAIGN_STATUSES),
                          "status")
    if target == "running" and c.status == "running":
        return
    if target == "completed":
        raise conflict("A campaign completes by itself when every contact is done")
    try:
        rules.check_transition(c.status, target)
    except rules.InvalidTransition as exc:
        raise conflict(f"Cannot {_verb(target)}: {exc}") from None
    previous = c.status
    c.status = target
    notify(session, "dialer")
    c.status_reason = reason
    c.updated_at = utcnow()
    if target == "running" and c.started_at is None:
        c.started_at = now
    kind = {"paused": "campaign.paused", "cancelled": "campaign.cancelled"}.get(
        target, "campaign.resumed" if previous == "paused" else "campaign.started")
    if target in ("running", "paused", "cancelled"):
        emit_campaign_event(session, c, kind, now)
    if target == "cancelled":
        c.completed_at = now
        await session.execute(
            update(Enrollment).where(Enrollment.campaign_id == c.id,
                                     Enrollment.status == "pending")
            .values(status="cancelled", reason="campaign cancelled", next_attempt_at=None,
                    updated_at=utcnow()))


def campaign_event_data(c: Campaign) -> dict[str, Any]:
    return {"campaign": {
        "id": c.id, "team_id": c.team_id, "name": c.name, "status": c.status,
        "status_reason": c.status_reason, "assistant_id": c.assistant_id,
        "company_id": c.company_id, "started_at": iso(c.started_at),
        "completed_at": iso(c.completed_at),
    }}


def emit_campaign_event(session: AsyncSession, c: Campaign, kind: str, at: datetime) -> None:
    emit(session, c.team_id, kind, campaign_event_data(c), at, subject_id=c.id)


def _verb(target: str) -> str:
    return {"paused": "pause", "running": "start", "cancelled": "cancel",
            "draft": "unschedule"}.get(target, target)


async def delete_campaign(session: AsyncSession, p: Principal, campaign_id: str) -> None:
    c = await owned(session, p, campaign_id, for_update=True)
    if c.status not in ("draft", "cancelled"):
        raise conflict(f"Only draft or cancelled campaigns can be deleted (this one is "
                       f"{c.status}); cancel it first")
    c.deleted_at = utcnow()
    c.updated_at = utcnow()


# ---------------------------------------------------------------- enrollments


def _permanent_reason(phone: str | None, dnc: bool, lead_status: str, listed: bool
                      ) -> str | None:
    if not phone:
        return "no_phone"
    if dnc:
        return "do_not_call"
    if lead_status == "do_not_contact":
        return "do_not_contact"
    if listed:
        return "team_dnc"
    return None


async def add_contacts(session: AsyncSession, p: Principal, campaign_id: str,
                       contact_ids: list[str], priority: int | None) -> dict[str, Any]:
    c = await owned(session, p, campaign_id, for_update=True)
    if c.status in ("completed", "cancelled"):
        raise conflict(f"Contacts cannot be added to a {c.status} campaign")
    wanted = list(dict.fromkeys(contact_ids))
    malformed = [i for i in wanted if not ids.is_valid("cont", i)]
    found: dict[str, tuple[str | None, bool, str, bool]] = {}
    good = [i for i in wanted if i not in malformed]
    listed = select(DncEntry.id).where(DncEntry.team_id == p.team_id,
                                       DncEntry.phone_number == Contact.phone).exists()
    for start in range(0, len(good), 900):
        chunk = good[start:start + 900]
        rows = await session.execute(
            select(Contact.id, Contact.phone, Contact.do_not_call, Contact.lead_status,
                   listed).where(Contact.team_id == p.team_id, Contact.id.in_(chunk)))
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
        reason = _permanent_reason(phone, dnc, lead, on) if (dnc or lead == "do_not_contact"
                                                              or on) else None
        status = "skipped" if reason else "pending"
        rows_to_add.append({
            "id": ids.new_id("cc"), "team_id": p.team_id, "campaign_id": c.id,
            "contact_id": cid, "status": status, "priority": priority or 0, "attempts": 0,
            "outcome_counts": {}, "answered": False, "reason": reason,
            "created_at": now, "updated_at": now,
        })
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


async def list_enrollments(session: AsyncSession, p: Principal, campaign_id: str,
                           status: str | None, limit: int, offset: int
                           ) -> tuple[list[dict[str, Any]], int]:
    c = await owned(session, p, campaign_id, include_deleted=True)
    stmt = (select(Enrollment, Contact.first_name, Contact.last_name, Contact.phone)
            .join(Contact, Contact.id == Enrollment.contact_id)
            .where(Enrollment.campaign_id == c.id, Enrollment.team_id == p.team_id))
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


# ---------------------------------------------------------------- run


MESSAGES = {
    "no_phone": "Contact {id} has no phone number",
    "do_not_call": "Contact {id} is marked do-not-call",
    "do_not_contact": "Contact {id} has lead status do_not_contact",
    "team_dnc": "Contact {id} has a number on the team do-not-call list",
    "invalid_number": "Contact {id} has an invalid phone number",
}


async def skip_uncallable(session: AsyncSession, c: Campaign, *, dry_run: bool
                          ) -> tuple[int, list[str]]:
    """Mark pending enrollments that can never be dialed as skipped; return how many
    enrollments of the campaign are skipped and a line for each (capped)."""
    listed = select(DncEntry.id).where(DncEntry.team_id == c.team_id,
                                       DncEntry.phone_number == Contact.phone).exists()
    reason = case(
        (Contact.phone.is_(None), "no_phone"),
        (Contact.do_not_call.is_(True), "do_not_call"),
        (Contact.lead_status == "do_not_contact", "do_not_contact"),
        (listed, "team_dnc"),
        else_=None,
    )
    doomed = list(await session.execute(
        select(Enrollment.id, Enrollment.contact_id, reason)
        .join(Contact, Contact.id == Enrollment.contact_id)
        .where(Enrollment.campaign_id == c.id, Enrollment.status == "pending",
               or_(Contact.phone.is_(None), Contact.do_not_call.is_(True),
                   Contact.lead_status == "do_not_contact", listed))
    ))
    if not dry_run:
        for start in range(0, len(doomed), 500):
            for eid, _cid, why in doomed[start:start + 500]:
                await session.execute(
                    update(Enrollment).where(Enrollment.id == eid,
                                             Enrollment.status == "pending")
                    .values(status="skipped", reason=why, updated_at=utcnow()))
    previously = list(await session.execute(
        select(Enrollment.contact_id, Enrollment.reason)
        .where(Enrollment.campaign_id == c.id, Enrollment.status == "skipped")
        .order_by(Enrollment.id)
    ))
    lines: dict[str, str] = {}
    for cid, why in [(cid, why) for _, cid, why in doomed] + [tuple(r) for r in previously]:
        if cid not in lines:
            lines[cid] = MESSAGES.get(why or "", "Contact {id} cannot be called ({why})").format(
                id=cid, why=why)
    total = len(lines)
    out = list(lines.values())[:ERRORS_LISTED]
    if total > ERRORS_LISTED:
        out.append(f"… and {total - ERRORS_LISTED} more contacts that cannot be called")
    return total, out


async def next_open_hint(session: AsyncSession, campaign_id: str, now: datetime
                         ) -> datetime | None:
    return await session.scalar(
        select(func.min(Enrollment.next_attempt_at))
        .where(Enrollment.campaign_id == campaign_id, Enrollment.status == "pending",
               Enrollment.next_attempt_at > now))


# ---------------------------------------------------------------- dashboard


async def dashboard(session: AsyncSession, p: Principal, campaign_id: str, now: datetime
                    ) -> dict[str, Any]:
    c = await owned(session, p, campaign_id, include_deleted=True)
    by_status: dict[str, int] = dict(list(await session.execute(
        select(Enrollment.status, func.count()).where(Enrollment.campaign_id == c.id)
        .group_by(Enrollment.status))))
    by_outcome: dict[str, int] = dict(list(await session.execute(
        select(Call.outcome, func.count()).where(Call.campaign_id == c.id,
                                                 Call.outcome.is_not(None))
        .group_by(Call.outcome))))
    count = (await counters(session, [c.id])).get(c.id, ZERO)
    called = count["contacts_called"]
    total = count["total_contacts"]
    queue = await session.execute(
        select(Enrollment, Contact.first_name, Contact.last_name, Contact.phone)
        .join(Contact, Contact.id == Enrollment.contact_id)
        .where(Enrollment.campaign_id == c.id, Enrollment.status == "pending")
        .order_by(Enrollment.priority.desc(), Enrollment.next_attempt_at.asc().nulls_first(),
                  Enrollment.id).limit(10))
    from callfleet.calls.service import call_out

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
    }

