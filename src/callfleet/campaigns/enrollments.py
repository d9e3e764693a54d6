"""Enrollments: adding a company's contacts, skipping those that can never be called, and the
one way an enrollment's status changes in bulk (:func:`move`), checked against the pure
transition rule (``dialer.rules.ENROLLMENT_TRANSITIONS``). The per-call change after an
attempt is ``dialer.outcomes``'s, through the same rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Update, and_, bindparam, case, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.compliance.models import DncEntry
from callfleet.crm.models import Contact
from callfleet.db.base import utcnow
from callfleet.dialer import rules
from callfleet.teams.principal import TeamScope

ENROLLMENTS = Enrollment.__table__
ERRORS_LISTED = 100

MESSAGES = {
    "no_phone": "Contact {id} has no phone number",
    "do_not_call": "Contact {id} is marked do-not-call",
    "do_not_contact": "Contact {id} has lead status do_not_contact",
    "team_dnc": "Contact {id} has a number on the team do-not-call list",
    "invalid_number": "Contact {id} has an invalid phone number",
}


def move(src: str, dst: str) -> Update:
    """``UPDATE campaign_contacts SET status = dst WHERE status = src``, for an edge the rule
    allows (raises ``rules.InvalidTransition`` otherwise). Callers add the rows (``where``)
    and the other columns (``values``); the WHERE on ``src`` makes a row that moved meanwhile
    stay as it is."""
    rules.check_enrollment_transition(src, dst)
    t = ENROLLMENTS.c
    return update(ENROLLMENTS).where(t.status == src).values(status=dst)


def new_row(team_id: str, campaign_id: str, contact_id: str, now: datetime, *,
            priority: int = 0, skip_reason: str | None = None) -> dict[str, Any]:
    """A new enrollment: ``pending``, or ``skipped`` with the reason it can never be called."""
    return {"id": ids.new_id("cc"), "team_id": team_id, "campaign_id": campaign_id,
            "contact_id": contact_id, "status": "skipped" if skip_reason else "pending",
            "priority": priority, "attempts": 0, "outcome_counts": {}, "answered": False,
            "reason": skip_reason, "created_at": now, "updated_at": now}


def permanent_skip_reason(phone: str | None, dnc: bool, lead_status: str, listed: bool
                          ) -> str | None:
    """Why a contact can never be called by a campaign, or None."""
    if not phone:
        return "no_phone"
    if dnc:
        return "do_not_call"
    if lead_status == "do_not_contact":
        return "do_not_contact"
    if listed:
        return "team_dnc"
    return None


async def enroll_company_contacts(s: AsyncSession, c: Campaign, now: datetime) -> int:
    """Enroll every contact of the campaign's company not yet in it (``audience:
    all_eligible``), at most 5,000 a call."""
    missing = (
        TeamScope(c.team_id).select(Contact.id)
        .where(Contact.company_id == c.company_id,
               ~exists().where(and_(Enrollment.campaign_id == c.id,
                                    Enrollment.contact_id == Contact.id)))
        .limit(5000)
    )
    contact_ids = list(await s.scalars(missing))
    if not contact_ids:
        return 0
    await s.execute(insert(Enrollment), [new_row(c.team_id, c.id, cid, now)
                                         for cid in contact_ids])
    return len(contact_ids)


async def cancel_pending(s: AsyncSession, campaign_id: str) -> None:
    """A cancelled campaign's waiting enrollments become ``cancelled`` (calls in progress
    finish first; their enrollments follow in ``dialer.outcomes``)."""
    await s.execute(
        move("pending", "cancelled").where(ENROLLMENTS.c.campaign_id == campaign_id)
        .values(reason="campaign cancelled", next_attempt_at=None, updated_at=utcnow()))


async def skip_uncallable(session: AsyncSession, c: Campaign, *, dry_run: bool
                          ) -> tuple[int, list[str]]:
    """Mark pending enrollments that can never be dialed as skipped; return how many
    enrollments of the campaign are skipped and a line for each (capped)."""
    scope = TeamScope(c.team_id)
    listed = scope.exists(DncEntry, DncEntry.phone_number == Contact.phone)
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
    if doomed and not dry_run:
        t = ENROLLMENTS.c
        await session.execute(
            move("pending", "skipped").where(t.id == bindparam("eid"))
            .values(reason=bindparam("why"), updated_at=utcnow()),
            [{"eid": eid, "why": why} for eid, _cid, why in doomed])
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
    """The earliest time a waiting enrollment of the campaign is due."""
    return await session.scalar(
        select(func.min(Enrollment.next_attempt_at))
        .where(Enrollment.campaign_id == campaign_id, Enrollment.status == "pending",
               Enrollment.next_attempt_at > now))
