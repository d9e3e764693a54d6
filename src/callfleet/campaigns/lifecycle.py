"""Every change of a campaign's status (SPEC 4 "Campaign lifecycle"), in one module.

Each change goes through the pure transition rule (``dialer.rules.check_transition``) and
emits its event in the same transaction, so a webhook consumer learns of every one:

==========================  ======================  ==========================================
change                      event                   ``reason`` in the event
==========================  ======================  ==========================================
run / resume (API)          campaign.started /      ``requested``
                            campaign.resumed
pause / cancel (API)        campaign.paused /       ``requested``
                            campaign.cancelled
draft <-> scheduled         campaign.scheduled /    ``requested``
                            campaign.unscheduled
scheduled start is due      campaign.started        ``scheduled_start``
no caller-ID number left    campaign.paused         ``no_active_caller_id``
carrier refuses the account campaign.paused         ``carrier_rejected``
every contact is done       campaign.completed      ``all_contacts_done``
==========================  ======================  ==========================================
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.campaigns import enrollments
from callfleet.campaigns.events import emit_campaign_event
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.db.base import utcnow
from callfleet.dialer import rules
from callfleet.errors import bad_request, conflict
from callfleet.wakeup import notify

log = structlog.get_logger("callfleet.campaigns")

NO_NUMBERS = "no active caller-ID number is left; add one and resume"


def _event(previous: str, target: str) -> str:
    if target == "running":
        return "campaign.resumed" if previous == "paused" else "campaign.started"
    if target == "draft":
        return "campaign.unscheduled"
    return f"campaign.{target}"


def _change(session: AsyncSession, c: Campaign, target: str, now: datetime,
            status_reason: str | None, reason: str) -> None:
    """The one write of ``Campaign.status`` (bar the set-based completion below)."""
    rules.check_transition(c.status, target)
    previous = c.status
    c.status = target
    c.status_reason = status_reason
    c.updated_at = utcnow()
    notify(session, "dialer")
    if target == "running" and c.started_at is None:
        c.started_at = now
    if target == "cancelled":
        c.completed_at = now
    emit_campaign_event(session, c, _event(previous, target), now, reason)


def _verb(target: str) -> str:
    return {"paused": "pause", "running": "start", "cancelled": "cancel",
            "draft": "unschedule"}.get(target, target)


async def transition(session: AsyncSession, c: Campaign, target: str, now: datetime,
                     reason: str | None = None) -> None:
    """A change a user asked for (``status`` in a PATCH, pause/resume/cancel/run). 409 when
    the rule forbids it."""
    if target not in rules.CAMPAIGN_STATUSES:
        raise bad_request("status must be one of " + ", ".join(rules.CAMPAIGN_STATUSES),
                          "status")
    if target == "running" and c.status == "running":
        return
    if target == "completed":
        raise conflict("A campaign completes by itself when every contact is done")
    if not rules.can_transition(c.status, target):
        raise conflict(f"Cannot {_verb(target)}: cannot move a campaign from {c.status} "
                       f"to {target}")
    _change(session, c, target, now, reason, "requested")
    if target == "cancelled":
        await enrollments.cancel_pending(session, c.id)


def reschedule(session: AsyncSession, c: Campaign, now: datetime) -> None:
    """After ``scheduled_start_at`` changed: a draft or scheduled campaign is ``scheduled``
    when its start is in the future, else ``draft``. Other statuses keep theirs."""
    if c.status not in ("draft", "scheduled"):
        return
    notify(session, "dialer")  # the start may have moved
    target = ("scheduled" if c.scheduled_start_at is not None and c.scheduled_start_at > now
              else "draft")
    if target != c.status:
        _change(session, c, target, now, None, "requested")


def start_scheduled(session: AsyncSession, c: Campaign, now: datetime) -> None:
    """A scheduled campaign whose start time has come."""
    _change(session, c, "running", now, "scheduled start", "scheduled_start")


def pause_without_numbers(session: AsyncSession, c: Campaign, now: datetime) -> None:
    """The dialer found no active caller-ID number for a running campaign."""
    _change(session, c, "paused", now, NO_NUMBERS, "no_active_caller_id")
    log.warning("campaign_paused_no_numbers", campaign_id=c.id)


async def pause_for_carrier(session: AsyncSession, campaign_id: str, now: datetime,
                            reason: str) -> bool:
    """The carrier refused a dial because of the account itself (credentials rejected, no
    funds): a running campaign pauses with the carrier's reason, so it stops dialing until
    someone fixes the account and resumes it."""
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    c = await session.scalar(stmt.execution_options(populate_existing=True))
    if c is None or c.status != "running":
        return False
    _change(session, c, "paused", now, f"the carrier refused the account: {reason}"[:500],
            "carrier_rejected")
    log.warning("campaign_paused_carrier", campaign_id=c.id, reason=reason)
    return True


async def maybe_complete(session: AsyncSession, campaign_id: str, now: datetime) -> bool:
    """A running campaign with nothing pending or calling is completed (unless evergreen).
    Set-based (a conditional UPDATE), so that concurrent workers complete it once."""
    busy = await session.scalar(
        select(exists().where(
            Enrollment.campaign_id == campaign_id,
            Enrollment.status.in_(("pending", "calling")),
        ))
    )
    if busy:
        return False
    rules.check_transition("running", "completed")
    res = await session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == "running",
               Campaign.no_auto_complete.is_(False))
        .values(status="completed", completed_at=now, updated_at=now,
                status_reason="every contact reached a final status")
    )
    if not res.rowcount:  # type: ignore[attr-defined]
        return False
    campaign = await session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is not None:
        emit_campaign_event(session, campaign, "campaign.completed", now, "all_contacts_done")
    return True
