"""The conversation of an answered call: the assistant against the callee.

The carrier reports "answered" (or "machine detected"); this module holds the conversation
(or leaves the voicemail) and tells the caller when to hang up.

Two paths. With no LLM configured (``conversation.llm.resolve_config``) the deterministic
script of ``conversation.script`` runs right here, inside the carrier-event transaction (it
takes microseconds). With an LLM, ``on_answered`` only queues a ``conversation`` job and
leaves the call in progress; ``conversation.worker.ConversationWorker`` runs the turns
outside any transaction and asks the carrier to hang up when the conversation ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet.assistants.models import Assistant
from callfleet.assistants.prompts import variables_for
from callfleet.calls.models import Call
from callfleet.calls.timeline import add_event
from callfleet.campaigns.models import Campaign
from callfleet.carriers.base import CarrierEvent
from callfleet.conversation import script
from callfleet.conversation.jobs import add_job
from callfleet.conversation.lines import Lines, lines_for
from callfleet.conversation.llm import LlmConfig, resolve_config
from callfleet.crm.models import Company, Contact
from callfleet.crm.views import company_out, contact_out
from callfleet.teams.llm_settings import team_llm_settings

log = structlog.get_logger("callfleet.conversation")


@dataclass
class Hangup:
    carrier_call_id: str
    after_seconds: float


@dataclass
class CallContext:
    """What a call's conversation reads: the assistant, the contact and company as their wire
    forms, the campaign, and every line the assistant may say, rendered for this call."""

    assistant: Assistant | None
    contact: dict[str, Any] | None
    company: dict[str, Any] | None
    campaign: Campaign | None
    lines: Lines


async def call_context(s: AsyncSession, call: Call) -> CallContext:
    assistant = await s.get(Assistant, call.assistant_id) if call.assistant_id else None
    row = await s.get(Contact, call.contact_id) if call.contact_id else None
    company_row = await s.get(Company, row.company_id) if row else None
    campaign = await s.get(Campaign, call.campaign_id) if call.campaign_id else None
    contact = contact_out(row) if row else None
    company = company_out(company_row, 0) if company_row else None
    variables = variables_for(contact, company, {
        "id": campaign.id, "name": campaign.name, "description": campaign.description,
    } if campaign else None)
    return CallContext(assistant, contact, company, campaign, lines_for(assistant, variables))


def note_unknown_variables(call: Call, meta: dict[str, Any], unknown: list[str]) -> None:
    """An unknown prompt variable renders empty; the call's log says which (SPEC 3)."""
    if unknown:
        meta["unknown_variables"] = unknown
        log.warning("unknown_prompt_variables", call_id=call.id, variables=unknown)


async def llm_for(s: AsyncSession, call: Call, assistant: Assistant | None
                  ) -> LlmConfig | None:
    if assistant is not None and assistant.llm_base_url:
        return resolve_config(assistant, None)
    return resolve_config(assistant, await team_llm_settings(s, call.team_id))


async def on_answered(s: AsyncSession, call: Call, event: CarrierEvent) -> Hangup | None:
    """A person answered. With an LLM configured the conversation is queued for a
    conversation worker (it takes seconds; no transaction may wait for it) and the call
    stays in progress; else the deterministic script runs here at once."""
    ctx = await call_context(s, call)
    persona = event.data.get("persona")
    config = await llm_for(s, call, ctx.assistant)
    if config is not None and ctx.assistant is not None:
        meta = dict(call.call_metadata or {})
        meta.update(persona=persona, conversation="llm", llm=config.describe())
        call.call_metadata = meta
        add_job(s, call.id, call.team_id, "conversation", event.at)
        return None
    result = script.run_scripted(lines=ctx.lines, persona=persona or "interested",
                                 contact=ctx.contact, number=call.to_number)
    call.messages = result.messages
    call.transcript = script.transcript(result.messages)
    meta = dict(call.call_metadata or {})
    meta.update(conversation_outcome=result.outcome,
                conversation_ended_reason=result.ended_reason,
                persona=persona)
    note_unknown_variables(call, meta, ctx.lines.unknown)
    call.call_metadata = meta
    return Hangup(event.carrier_call_id, result.duration_seconds)


async def on_machine(s: AsyncSession, call: Call, event: CarrierEvent) -> Hangup:
    ctx = await call_context(s, call)
    assistant, campaign = ctx.assistant, ctx.campaign
    action = (campaign.voicemail_action if campaign and campaign.voicemail_action
              else assistant.voicemail_action if assistant else "hangup")
    meta = dict(call.call_metadata or {})
    meta.update(voicemail=True, voicemail_action=action)
    add_event(s, call, "call.machine_detection.ended", event.at,
              {"result": "machine", "action": action})
    if action == "leave_message" and assistant is not None:
        text = ctx.lines.voicemail
        call.messages = [{"role": "assistant", "text": text, "time": 0.0}]
        call.transcript = script.transcript(call.messages)
        note_unknown_variables(call, meta, ctx.lines.unknown)
        call.call_metadata = meta
        return Hangup(event.carrier_call_id, script.seconds_to_say(text))
    call.call_metadata = meta
    return Hangup(event.carrier_call_id, 0.5)
