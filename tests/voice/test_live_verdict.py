"""The carrier's AMD verdict handed to the call's live session (docs/decisions/0043)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from callfleet.carriers.base import CarrierEvent
from callfleet.voice.control import CallControl
from callfleet.voice.live import amd_verdict

AT = datetime(2031, 1, 1, tzinfo=UTC)


def _event(kind: str, **data: Any) -> CarrierEvent:
    return CarrierEvent("twilio", "CA1", "call_1", kind, AT, {"audio": True, **data})


async def test_a_machine_verdict_reaches_the_live_session_once() -> None:
    control = CallControl("call_1")
    heard: list[dict[str, Any]] = []
    control.verdict_listeners.append(heard.append)
    voice = SimpleNamespace(sessions={"call_1": SimpleNamespace(control=control)})
    assert amd_verdict(voice, _event("machine_detected", amd="machine_end_beep"))
    assert control.machine and control.amd is not None
    assert control.amd["amd"] == "machine_end_beep"
    assert [e["type"] for e in control.events] == ["carrier_amd"]
    # A repeated (or contradicting) verdict changes nothing.
    assert amd_verdict(voice, _event("human_detected", amd="human", answered_by="human"))
    assert control.machine and len(heard) == 1


async def test_no_session_here_or_another_event_is_not_delivered() -> None:
    control = CallControl("call_1")
    voice = SimpleNamespace(sessions={"call_1": SimpleNamespace(control=control)})
    assert not amd_verdict(None, _event("machine_detected"))
    assert not amd_verdict(SimpleNamespace(sessions={}), _event("machine_detected"))
    assert not amd_verdict(voice, _event("answered"))
    assert control.amd is None
    assert amd_verdict(voice, _event("human_detected", amd="human", answered_by="human"))
    assert control.amd is not None and not control.machine
