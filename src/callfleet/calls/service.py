"""Calls: the read API and placing one call outside a campaign (POST /api/crm/calls)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.assistants.service import owned_assistant
from callfleet.calls.models import Call, CallEvent
from callfleet.calls.timeline import add_event
from callfleet.calls.views import call_out
from callfleet.campaigns.policy import legal_hours
from callfleet.compliance.models import DncEntry
from callfleet.crm import fields as F
from callfleet.crm.models import Contact
from callfleet.db.base import utcnow
from callfleet.dialer import rules
from callfleet.errors import ApiError, bad_request, conflict, not_found
from callfleet.numbers.models import PhoneNumber
from callfleet.secrets import SecretBox
from callfleet.teams.models import Team
from callfleet.teams.principal import Principal

CALL_STATUSES = ("queued", "dialing", "ringing", "in_progress", "ended")


async def get_call(session: AsyncSession, p: Principal, call_id: str) -> dict[str, Any]:
    c = await p.scope.get(session, Call, call_id)
    events = list(await session.scalars(
        select(CallEvent).where(CallEvent.call_id == c.id).order_by(CallEvent.at, CallEvent.id)
    ))
    return call_out(c, full=True, events=events)


def _when(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"{name} must be an ISO 8601 time", name) from None
    if value.tzinfo is None:
        raise bad_request(f"{name} must include a time zone (e.g. Z)", name)
    return value


async def list_calls(
    session: AsyncSession, p: Principal, filters: dict[str, str | None], limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    stmt = p.scope.select(Call)
    for key, column, prefix in (("campaignId", Call.campaign_id, "camp"),
                                ("contactId", Call.contact_id, "cont"),
                                ("assistantId", Call.assistant_id, "asst")):
        value = filters.get(key)
        if value:
            if not ids.is_valid(prefix, value):
                raise bad_request(f"{key} is not a valid id", key)
            stmt = stmt.where(column == value)
    if filters.get("status"):
        if filters["status"] not in CALL_STATUSES:
            raise bad_request("status must be one of " + ", ".join(CALL_STATUSES), "status")
        stmt = stmt.where(Call.status == filters["status"])
    if filters.get("outcome"):
        if filters["outcome"] not in rules.OUTCOMES:
            raise bad_request("outcome must be one of " + ", ".join(rules.OUTCOMES), "outcome")
        stmt = stmt.where(Call.outcome == filters["outcome"])
    if filters.get("direction"):
        if filters["direction"] not in ("outbound", "inbound"):
            raise bad_request("direction must be outbound or inbound", "direction")
        stmt = stmt.where(Call.direction == filters["direction"])
    for key, column in (("from", Call.from_number), ("to", Call.to_number)):
        if filters.get(key):
            number = _phone(filters[key], key)
            stmt = stmt.where(column == number)
    after = _when(filters.get("startedAfter"), "startedAfter")
    before = _when(filters.get("startedBefore"), "startedBefore")
    if after:
        stmt = stmt.where(Call.started_at >= after)
    if before:
        stmt = stmt.where(Call.started_at < before)
    total = int(await session.scalar(stmt.with_only_columns(func.count()).order_by(None)) or 0)
    rows = await session.scalars(stmt.order_by(Call.id.desc()).limit(limit).offset(offset))
    return [call_out(c) for c in rows], total


def _phone(raw: str | None, name: str, region: str = "US") -> str:
    try:
        value = F.normalize_phone(raw, region)
    except ValueError as exc:
        raise bad_request(f"{name} {exc}", name) from None
    if value is None:
        raise bad_request(f"{name} is required", name)
    return value


async def create_single_call(
    session: AsyncSession, p: Principal, data: dict[str, Any], *, now: datetime,
    region: str, legal_start: str, legal_end: str, carrier_name: str, lease: Any,
    worker_id: str,
) -> Call:
    """The call row for POST /api/crm/calls, after the compliance checks a dial needs."""
    if not data.get("assistant_id"):
        raise bad_request("assistantId is required", "assistantId")
    assistant = await owned_assistant(session, p, data["assistant_id"])
    to_number = _phone(data.get("to_number"), "toNumber", region)
    contact: Contact | None = None
    if data.get("contact_id"):
        contact = await p.scope.get(session, Contact, data["contact_id"])
    if data.get("from_number"):
        from_number = _phone(data["from_number"], "fromNumber", region)
        owned = await session.scalar(
            p.scope.select(PhoneNumber.id).where(PhoneNumber.phone_number == from_number,
                                                 PhoneNumber.status == "active"))
        if owned is None:
            raise bad_request("fromNumber is not an active number of this team", "fromNumber")
    else:
        from_number = await session.scalar(
            p.scope.select(PhoneNumber.phone_number).where(
                PhoneNumber.assistant_id == assistant.id, PhoneNumber.status == "active")
            .order_by(PhoneNumber.id).limit(1))
        if from_number is None:
            raise bad_request("The assistant has no active phone number; pass fromNumber",
                              "fromNumber")
    listed = await session.scalar(
        p.scope.select(DncEntry.id).where(DncEntry.phone_number == to_number))
    if listed or (contact is not None and (contact.do_not_call
                                           or contact.lead_status == "do_not_contact")):
        raise conflict("toNumber is on the do-not-call list")
    team = await session.get(Team, p.team_id)
    tz, _ = rules.effective_timezone(
        contact_tz=contact.timezone if contact else None, phone=to_number,
        campaign_tz="America/New_York", use_contact_timezone=True)
    legal = legal_hours(team.settings if team else None, legal_start, legal_end)
    if not rules.legal_contains(legal, tz, now):
        raise ApiError(409, f"Outside legal calling hours in {tz} "
                            f"({rules.format_hhmm(legal.start)}-{rules.format_hhmm(legal.end)})")
    metadata = data.get("metadata") or {}
    call = Call(
        id=ids.new_id("call"), team_id=p.team_id, direction="outbound",
        contact_id=contact.id if contact else None, assistant_id=assistant.id,
        from_number=from_number, to_number=to_number, status="dialing", attempt=1,
        started_at=now, carrier=carrier_name, messages=[], analysis={},
        call_metadata={"user": metadata}, lease_owner=worker_id, lease_expires_at=now + lease,
        created_at=utcnow(), updated_at=utcnow(),
    )
    session.add(call)
    add_event(session, call, "call.initiated", now, {"attempt": 1})
    await session.flush()
    return call


RECORDING_LINK_SECONDS = 3600


def _link_message(call_id: str, expires: int) -> str:
    return f"recording:{call_id}:{expires}"


async def recording_link(session: AsyncSession, p: Principal, call_id: str, base_url: str,
                         now: float, box: SecretBox) -> dict[str, Any]:
    """A signed link to the call's recording that works without an API key until it
    expires (``GET /api/calls/{id}/recording-url``). 404 while the call has no recording."""
    call = await p.scope.get(session, Call, call_id)
    if not call.recording_url:
        raise not_found("Recording")
    expires = int(now) + RECORDING_LINK_SECONDS
    signature = box.sign(_link_message(call.id, expires))
    url = (f"{base_url.rstrip('/')}/api/calls/{call.id}/recording?expires={expires}"
           f"&signature={signature}")
    return {"success": True, "url": url, "expiresIn": RECORDING_LINK_SECONDS}


def recording_link_valid(call_id: str, expires: str | None, signature: str | None,
                         now: float, box: SecretBox) -> bool:
    """Does a recording link's signature hold, and has it not expired?"""
    if not expires or not signature or not expires.isdigit() or int(expires) < now:
        return False
    return box.verify(_link_message(call_id, int(expires)), signature)
