"""What Telnyx's Call Control webhooks mean, as ``CarrierEvent``s (pure functions of the
JSON body ``{"data": {"event_type", "id", "occurred_at", "payload": {...}}}``).

callfleet's call id is the base64 ``client_state`` it set when dialing. A hang-up with
``normal_clearing`` ends a call that was connected, so it also yields the answer (at
``start_time`` when the answer itself was not seen): a late or lost ``call.answered``
changes nothing. Every event is ``audio``: the call's audio streams to the voice runtime.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from callfleet.carriers.base import CarrierEvent

HANGUP_REASON = {
    "normal_clearing": "completed", "time_limit": "completed", "user_busy": "busy",
    "call_rejected": "declined", "not_found": "invalid_number", "no_answer": "no_answer",
    "timeout": "no_answer", "originator_cancel": "failed", "unspecified": "failed",
}
MACHINE_RESULTS = {"machine", "fax_detected"}
HUMAN_RESULTS = {"human", "human_residence", "human_business"}


def client_state_of(payload: dict[str, Any]) -> str | None:
    """The call id in ``client_state`` (None when absent; ValueError when not base64)."""
    state = payload.get("client_state")
    if not isinstance(state, str) or not state:
        return None
    value = base64.b64decode(state, validate=True).decode()
    if not value or len(value) > 64:
        raise ValueError("client_state is not a callfleet call id")
    return value


def _time(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        if abs((at - fallback).total_seconds()) < 86400:
            return at
    return fallback


def translate(body: dict[str, Any], call_ref: str, now: datetime) -> list[CarrierEvent]:
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    assert isinstance(data, dict)
    kind = str(data.get("event_type") or "")
    payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    ccid = str(payload.get("call_control_id") or "")
    at = _time(data.get("occurred_at"), now)
    base: dict[str, Any] = {"audio": True, "carrier_status": kind, "event_id": data.get("id")}

    def event(type_: str, when: datetime, **extra: Any) -> CarrierEvent:
        return CarrierEvent("telnyx", ccid, call_ref, type_, when, {**base, **extra})

    if kind == "call.initiated":
        return [event("initiated", at)]
    if kind == "call.answered":
        return [event("answered", at, answered_by="unknown")]
    if kind == "call.hangup":
        cause = str(payload.get("hangup_cause") or "unspecified")
        reason = HANGUP_REASON.get(cause, "failed")
        out = []
        if reason == "completed":
            out.append(event("answered", _time(payload.get("start_time"), at),
                             answered_by="unknown"))
        out.append(event("ended", at, reason=reason, hangup_cause=cause,
                         hangup_source=payload.get("hangup_source")))
        return out
    if kind in ("call.machine.detection.ended", "call.machine.premium.detection.ended"):
        result = str(payload.get("result") or "not_sure")
        if result in MACHINE_RESULTS:
            return [event("machine_detected", at, amd=result, answered_by="machine")]
        verdict = "human" if result in HUMAN_RESULTS else "unknown"
        return [event("human_detected", at, amd=result, answered_by=verdict)]
    if kind in ("call.machine.greeting.ended", "call.machine.premium.greeting.ended"):
        return [event("greeting_ended", at, result=payload.get("result"))]
    return []
