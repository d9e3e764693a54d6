"""The carrier's AMD verdict handed to the call's live session (docs/decisions/0043)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from callfleet.voice.control import CallControl
from callfleet.voice.routes import VoiceService
from callfleet.voice.runtime import Admission


class _Session:
    def __init__(self) -> None:
        self.control = CallControl("call_1")
        self.verdicts: list[str] = []

    def carrier_verdict(self, kind: str) -> bool:
        self.verdicts.append(kind)
        return kind == "machine"


def _voice(sessions: dict[str, Any]) -> VoiceService:
    return VoiceService(planner=SimpleNamespace(), admission=Admission(4),  # type: ignore[arg-type]
                        sessions=sessions)


async def test_a_machine_verdict_reaches_the_live_session_and_is_recorded_once() -> None:
    session = _Session()
    voice = _voice({"call_1": session})
    assert voice.amd_verdict("call_1", "machine")
    assert session.verdicts == ["machine"]
    assert session.control.machine and session.control.amd is not None
    assert [e["type"] for e in session.control.events] == ["carrier_amd"]
    # A repeated (or contradicting) verdict is not recorded again; the gate decides.
    assert not voice.amd_verdict("call_1", "human")
    assert session.control.machine
    assert [e["type"] for e in session.control.events] == ["carrier_amd"]


async def test_no_session_in_this_process_is_not_delivered() -> None:
    session = _Session()
    assert not _voice({}).amd_verdict("call_1", "machine")
    assert not _voice({"call_2": session}).amd_verdict("call_1", "machine")
    assert session.verdicts == [] and session.control.amd is None
