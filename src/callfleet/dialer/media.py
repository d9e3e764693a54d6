"""Carrier events of calls whose audio flows through a media stream (Twilio, Telnyx, or the
simulated network's audio mode): the conversation is the voice runtime's, held over that stream, so the text
conversation of the simulated network never runs for them. What is left here is the
record: the answering-machine verdict as a timeline event, and the hang-up on a machine
when the assistant's voicemail action is ``hangup`` (a message to leave is the voice
runtime's, after the greeting ends).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.calls.timeline import add_event
from callfleet.campaigns.models import Campaign
from callfleet.carriers.base import CarrierEvent
from callfleet.conversation.runtime import Hangup


def is_voice(call: Call, event: CarrierEvent) -> bool:
    """The call's conversation is held over a media stream (its "answered" said so, or
    this event does)."""
    return bool(event.data.get("audio")) or (call.call_metadata or {}).get(
        "conversation") == "voice"


def on_answered(call: Call, event: CarrierEvent) -> None:
    """Answered: the conversation is the voice runtime's (``conversation: voice``); the
    simulated network's audio mode says which persona speaks."""
    meta = dict(call.call_metadata or {})
    meta["conversation"] = "voice"
    if event.data.get("persona"):
        meta["persona"] = event.data["persona"]
    call.call_metadata = meta


async def voicemail_action(s: AsyncSession, call: Call) -> str:
    campaign = await s.get(Campaign, call.campaign_id) if call.campaign_id else None
    if campaign is not None and campaign.voicemail_action:
        return campaign.voicemail_action
    assistant = await s.get(Assistant, call.assistant_id) if call.assistant_id else None
    return assistant.voicemail_action if assistant is not None else "hangup"


async def on_machine(s: AsyncSession, call: Call, event: CarrierEvent) -> Hangup | None:
    """The carrier's AMD says a machine answered: never pitch to it."""
    meta = dict(call.call_metadata or {})
    if meta.get("voicemail"):
        return None  # a repeated verdict
    action = await voicemail_action(s, call)
    meta.update(voicemail=True, voicemail_action=action, amd=event.data.get("amd"))
    call.call_metadata = meta
    add_event(s, call, "call.machine_detection.ended", event.at,
              {"result": "machine", "amd": event.data.get("amd"), "action": action})
    if action == "hangup":
        return Hangup(event.carrier_call_id, 0.0)
    return None


def on_human(s: AsyncSession, call: Call, event: CarrierEvent) -> None:
    """The AMD verdict is a person (or unsure): recorded, the conversation goes on."""
    meta = dict(call.call_metadata or {})
    if "amd" in meta:
        return
    meta["amd"] = event.data.get("amd")
    call.call_metadata = meta
    add_event(s, call, "call.machine_detection.ended", event.at,
              {"result": event.data.get("answered_by", "unknown"),
               "amd": event.data.get("amd")})
