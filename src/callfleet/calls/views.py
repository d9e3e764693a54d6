"""The wire form of a call (SPEC 3, "Calls"): what the API returns and events carry."""

from __future__ import annotations

from typing import Any

from callfleet.calls.models import Call, CallEvent
from callfleet.db.base import iso


def call_out(c: Call, *, full: bool = False, events: list[CallEvent] | None = None
             ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "team_id": c.team_id,
        "direction": c.direction,
        "campaign_id": c.campaign_id,
        "contact_id": c.contact_id,
        "assistant_id": c.assistant_id,
        "from_number": c.from_number,
        "to_number": c.to_number,
        "status": c.status,
        "outcome": c.outcome,
        "ended_reason": c.ended_reason,
        "attempt": c.attempt,
        "started_at": iso(c.started_at),
        "answered_at": iso(c.answered_at),
        "ended_at": iso(c.ended_at),
        "duration_seconds": c.duration_seconds,
        "carrier": c.carrier,
        "carrier_call_id": c.carrier_call_id,
        "created_at": iso(c.created_at),
    }
    if full:
        analysis = dict(c.analysis or {})
        evaluation = analysis.get("success_evaluation")
        if isinstance(evaluation, dict):  # stored before the boolean shape (Talkturo's)
            analysis.setdefault("success_reason", evaluation.get("reason"))
            analysis["success_evaluation"] = evaluation.get("success")
        out.update(
            messages=c.messages or [],
            transcript=c.transcript,
            analysis={
                **analysis,  # method, analyzed_at, rejected, reverted_at, ... when present
                "summary": analysis.get("summary"),
                "success_evaluation": analysis.get("success_evaluation"),
                "success_reason": analysis.get("success_reason"),
                "extracted_data": analysis.get("extracted_data", {}),
            },
            events=[{"type": e.type, "at": iso(e.at), "data": e.data or {}}
                    for e in (events or [])],
            recording_url=c.recording_url,
            metadata=c.call_metadata or {},
        )
    return out
