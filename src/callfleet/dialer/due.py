"""When the dialer next has work at a known time, so that an idle dialer sleeps until then
(and no longer) instead of polling (docs/decisions/0020-idle-loops.md).

Work that appears at once (a campaign started, contacts enrolled, a call placed) wakes the
dialer through ``callfleet.wakeup``; this module covers work that becomes due by the clock:

* a scheduled campaign's start;
* a pending enrollment of a running campaign whose ``next_attempt_at`` comes (a retry, or a
  call window or legal hours opening; enrollments with no time are due now);
* a call whose lease expires (reconciliation);
* the carrier's next event (the simulated network's calls; ``Carrier.next_event_at``);
* the next look for new contacts of a running ``all_eligible`` campaign (``audience_at``:
  the dialer enrolls them every few seconds).

One read, each part an index seek: ``ix_campaigns_status``, ``ix_campaign_contacts_due``
per running campaign, ``ix_calls_status_lease``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select

from callfleet.calls.models import ACTIVE_CALL_STATUSES, Call
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.db.session import Database


async def next_due(db: Database, now: datetime, audience_at: datetime | None = None
                   ) -> datetime | None:
    """The earliest known time the dialer has work (``now`` when some is due already)."""
    c, e = Campaign, Enrollment
    live = (c.deleted_at.is_(None),)
    pending = (e.campaign_id == c.id, e.status == "pending")
    scheduled = select(func.min(c.scheduled_start_at)).where(c.status == "scheduled", *live)
    leases = select(func.min(Call.lease_expires_at)).where(
        Call.status.in_(ACTIVE_CALL_STATUSES))
    # Per running campaign: the earliest timed enrollment (correlated, so an index seek).
    first_timed = (select(func.min(e.next_attempt_at)).where(*pending)
                   .correlate(c).scalar_subquery())
    timed = select(func.min(first_timed)).where(c.status == "running", *live)
    untimed = select(c.id).where(c.status == "running", *live,
                                 exists().where(*pending, e.next_attempt_at.is_(None)))
    audience = select(c.id).where(c.status == "running", c.audience == "all_eligible", *live)
    async with db.session(write=False) as s:
        row = (await s.execute(select(
            scheduled.scalar_subquery(), leases.scalar_subquery(), timed.scalar_subquery(),
            untimed.limit(1).exists(), audience.limit(1).exists()))).one()
    if row[3]:
        return now
    times = [t for t in row[:3] if t is not None]
    if row[4] and audience_at is not None:
        times.append(audience_at)
    return min(times) if times else None
