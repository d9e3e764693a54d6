"""What a carrier says about a call while its media session runs: handed from the carrier's
callback to the session (when it runs in this process).

``amd_verdict`` is the one entry point: the carrier routes call it after the verdict was
applied to the call's record (``dialer.outcomes`` → ``dialer.media.on_machine`` /
``on_human``: metadata, timeline, a hang-up when the voicemail action is ``hangup``). Here
the live session's ``CallControl.machine_verdict`` gets it, so the pipeline can stop pitching
at once. A session in another voice process learns the same verdict from the call's
metadata (``voicemail``, ``amd``). No pipecat here: importable by a plain install.
"""

from __future__ import annotations

import asyncio
from typing import Any

from callfleet.carriers.base import CarrierEvent

VERDICTS = ("machine_detected", "human_detected")


def amd_verdict(voice: Any, event: CarrierEvent) -> bool:
    """Hand ``event`` (``machine_detected`` / ``human_detected``) to the call's live media
    session in this process (``voice``: the app's ``VoiceService``, None without live voice);
    True when one took it."""
    if voice is None or event.type not in VERDICTS:
        return False
    session = getattr(voice, "sessions", {}).get(event.call_ref)
    control = getattr(session, "control", None)
    if control is None:
        return False
    answered_by = "machine" if event.type == "machine_detected" else str(
        event.data.get("answered_by") or "unknown")
    control.machine_verdict(answered_by, event.data.get("amd"),
                            asyncio.get_running_loop().time())
    return True
