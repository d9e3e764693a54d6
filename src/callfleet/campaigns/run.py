"""POST /api/crm/campaigns/{id}/run: start a campaign now (seed page 003).

An orchestration over several transactions, so it owns them (unlike the services): skip the
enrollments that can never be called and move the campaign to ``running`` (one commit), then
let the dialer claim and place up to ``min(maxCalls, free concurrency)`` calls that are
eligible now. ``dryRun`` runs the same choice in a transaction that is rolled back.
"""

from __future__ import annotations

from typing import Any

from callfleet.calls.models import Call
from callfleet.calls.views import call_out
from callfleet.campaigns import enrollments, lifecycle
from callfleet.campaigns import service as svc
from callfleet.db.base import iso
from callfleet.db.session import Database
from callfleet.dialer.engine import Dialer
from callfleet.errors import conflict
from callfleet.teams.principal import Principal


async def run_campaign(db: Database, dialer: Dialer, p: Principal, campaign_id: str,
                       max_calls: int | None, dry_run: bool) -> dict[str, Any]:
    now = dialer.clock.now()
    async with db.session() as s:
        c = await svc.owned(s, p, campaign_id, for_update=True)
        if c.status in ("completed", "cancelled"):
            raise conflict(f"A {c.status} campaign cannot be run; create a new campaign")
        await svc.check_refs(s, p, c)
        failed, errors = await enrollments.skip_uncallable(s, c, dry_run=dry_run)
        free = max(0, c.max_concurrent_calls - c.active_calls)
        if not dry_run:
            await lifecycle.transition(s, c, "running", now)
            await s.commit()
        else:
            await s.rollback()
    budget = min(max_calls or free, free)
    placements = await dialer.claim_campaign(campaign_id, now, budget, dry_run=dry_run) \
        if budget else []
    calls: list[dict[str, Any]]
    if dry_run:
        calls = [{"contact_id": x.contact_id, "to": x.to_number, "from": x.from_number}
                 for x in placements]
    else:
        await dialer.place(placements)
        async with db.session(write=False) as s:
            calls = []
            for x in placements:
                row = await s.get(Call, x.call_id)
                if row is not None:
                    calls.append(call_out(row))
    async with db.session() as s:
        hint = await enrollments.next_open_hint(s, campaign_id, now)
        if not dry_run and await lifecycle.maybe_complete(s, campaign_id, now):
            await s.commit()
    started = len(placements)
    if dry_run:
        message = f"Dry run: would start {started} call{'s' * (started != 1)}"
    elif started:
        message = f"Started {started} call{'s' * (started != 1)}"
    elif budget == 0:
        message = "No free concurrency slot; calls will start as running calls end"
    elif hint is not None:
        message = f"No contact can be called now; the call window next opens at {iso(hint)}"
    else:
        message = "No contacts are due now"
    if dry_run and not started and hint is not None:
        message += f"; the call window next opens at {iso(hint)}"
    return {"success": True, "started": started, "failed": failed, "calls": calls,
            "errors": errors, "message": message, "dryRun": dry_run}
