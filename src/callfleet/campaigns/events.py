"""Events about a campaign's status, written to the outbox in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.campaigns.models import Campaign
from callfleet.campaigns.views import campaign_event_data
from callfleet.webhooks.outbox import emit


def emit_campaign_event(session: AsyncSession, c: Campaign, kind: str, at: datetime,
                        reason: str) -> None:
    """``kind`` (``campaign.started``, ``campaign.paused``, ...) with the campaign as it is now
    and ``reason``, a code saying what moved it (``requested``, ``scheduled_start``,
    ``no_active_caller_id``, ``all_contacts_done``)."""
    emit(session, c.team_id, kind, {**campaign_event_data(c), "reason": reason}, at,
         subject_id=c.id)
