"""Queueing a call's post-call analysis (in the transaction that ends the call)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.calls.models import Call
from callfleet.conversation import jobs

KIND = "analysis"


def mark_for_analysis(session: AsyncSession, call: Call, at: datetime) -> None:
    """Queue the analysis of a call that just ended (same transaction as the ending)."""
    if call.answered_at is None or not call.messages:
        return
    if (call.call_metadata or {}).get("voicemail"):
        return
    jobs.add_job(session, call.id, call.team_id, KIND, at)
