"""What Twilio's callbacks mean, as ``CarrierEvent``s (pure functions of the posted form).

Status callbacks (``StatusCallbackEvent`` initiated, ringing, answered, completed) carry
``CallStatus``; the asynchronous answering-machine verdict arrives on its own callback with
``AnsweredBy``. A ``completed`` call was answered (``CallDuration`` seconds ago), so its
callback also yields the answer: a lost or late ``in-progress`` callback changes nothing.
Every event is ``audio``: the call's audio streams to the voice runtime.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from callfleet.carriers.base import CarrierEvent

MACHINE = {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
           "fax"}
ENDED = {"completed": "completed", "busy": "busy", "no-answer": "no_answer",
         "failed": "failed", "canceled": "failed"}


def event_time(params: dict[str, str], now: datetime) -> datetime:
    """Twilio's ``Timestamp`` (RFC 2822) when present and sane, else ``now``."""
    stamp = params.get("Timestamp")
    if stamp:
        try:
            at = parsedate_to_datetime(stamp)
        except (TypeError, ValueError):
            return now
        if at.tzinfo is not None and abs((at - now).total_seconds()) < 86400:
            return at
    return now


def events_from_status(call_ref: str, params: dict[str, str], now: datetime
                       ) -> list[CarrierEvent]:
    sid = params.get("CallSid", "")
    status = params.get("CallStatus", "")
    at = event_time(params, now)
    data: dict[str, Any] = {"audio": True, "carrier_status": status}

    def event(kind: str, when: datetime, **extra: Any) -> CarrierEvent:
        return CarrierEvent("twilio", sid, call_ref, kind, when, {**data, **extra})

    if status in ("queued", "initiated"):
        return [event("initiated", at)]
    if status == "ringing":
        return [event("ringing", at)]
    if status == "in-progress":
        return [event("answered", at, answered_by=answered_by(params))]
    if status in ENDED:
        out = []
        if status == "completed":
            try:
                duration = max(0, int(params.get("CallDuration") or 0))
            except ValueError:
                duration = 0
            out.append(event("answered", at - timedelta(seconds=duration),
                             answered_by=answered_by(params)))
        out.append(event("ended", at, reason=ENDED[status]))
        return out
    return []


def answered_by(params: dict[str, str]) -> str:
    value = params.get("AnsweredBy") or ""
    if value in MACHINE:
        return "machine"
    return "human" if value == "human" else "unknown"


def events_from_amd(call_ref: str, params: dict[str, str], now: datetime
                    ) -> list[CarrierEvent]:
    """The asynchronous AMD verdict: a machine, or the human/unknown verdict recorded."""
    sid = params.get("CallSid", "")
    verdict = params.get("AnsweredBy") or "unknown"
    at = event_time(params, now)
    data = {"audio": True, "amd": verdict, "answered_by": answered_by(params)}
    kind = "machine_detected" if verdict in MACHINE else "human_detected"
    return [CarrierEvent("twilio", sid, call_ref, kind, at, data)]
