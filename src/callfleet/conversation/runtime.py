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
from callfleet.assistants.prompts import render, variables_for
from callfleet.calls.models import Call
from callfleet.calls.timeline import add_event
from callfleet.campaigns.models import Campaign
from callfleet.carriers.base import CarrierEvent
from callfleet.conversation import script
from callfleet.conversation.jobs import add_job
from callfleet.conversation.llm import LlmConfig, resolve_config
from callfleet.crm.models import Company, Contact
from callfleet.crm.views import company_out, contact_out
from callfleet.teams.llm_settings import team_llm_settings

log = structlog.get_logger("callfleet.conversation")


@dataclass
class Hangup:
    carrier_call_id: str
    after_seconds: float


async def call_context(s: AsyncSession, call: Call) -> tuple[
    Assistant | None, dict[str, Any] | None, dict[str, Any] | None, Campaign | None
]:
    assistant = await s.get(Assistant, call.assistant_id) if call.assistant_id else None
    contact = await s.get(Contact, call.contact_id) if call.contact_id else None
    company = await s.get(Company, contact.company_id) if contact else None
    campaign = await s.get(Campaign, call.campaign_id) if call.campaign_id else None
    return (assistant, contact_out(contact) if contact else None,
            company_out(company, 0) if company else None, campaign)


async def llm_for(s: AsyncSession, call: Call, assistant: Assistant | None
                  ) -> LlmConfig | None:
    if assistant is not None and assistant.llm_base_url:
        return resolve_config(assistant, None)
    return resolve_config(assistant, await team_llm_settings(s, call.team_id))


async def on_answered(s: AsyncSession, call: Call, event: CarrierEvent) -> Hangup | None:
    """A person answered. With an LLM configured the conversation is queued for a
    conversation worker (it takes seconds; no transaction may wait for it) and the call
    stays in progress; else the deterministic script runs here at once."""
    assistant, contact, company, campaign = await call_context(s, call)
    persona = event.data.get("persona")
    config = await llm_for(s, call, assistant)
    if config is not None and assistant is not None:
        meta = dict(call.call_metadata or {})
        meta.update(persona=persona, conversation="llm", llm=config.describe())
        call.call_metadata = meta
        add_job(s, call.id, call.team_id, "conversation", event.at)
        return None
    variables = variables_for(
        contact, company, {"name": campaign.name} if campaign else None
    )
    first, unknown = render(assistant.first_message if assistant else "", variables)
    fields = ((assistant.info_extraction or {}).get("fields") or []) if assistant else []
    closing = ((assistant.end_call or {}).get("closing_phrase")) if assistant else None
    result = script.run_scripted(
        first_message=first, persona=persona or "interested",
        contact=contact, extraction_fields=fields, closing_phrase=closing,
        number=call.to_number,
    )
    call.messages = result.messages
    call.transcript = script.transcript(result.messages)
    meta = dict(call.call_metadata or {})
    meta.update(conversation_outcome=result.outcome,
                conversation_ended_reason=result.ended_reason,
                persona=persona)
    if unknown:
        meta["unknown_variables"] = unknown
        log.warning("unknown_prompt_variables", call_id=call.id, variables=unknown)
    call.call_metadata = meta
    return Hangup(event.carrier_call_id, result.duration_seconds)


async def on_machine(s: AsyncSession, call: Call, event: CarrierEvent) -> Hangup:
    assistant, contact, company, campaign = await call_context(s, call)
    action = (campaign.voicemail_action if campaign and campaign.voicemail_action
              else assistant.voicemail_action if assistant else "hangup")
    meta = dict(call.call_metadata or {})
    meta.update(voicemail=True, voicemail_action=action)
    call.call_metadata = meta
    add_event(s, call, "call.machine_detection.ended", event.at,
              {"result": "machine", "action": action})
    if action == "leave_message" and assistant is not None:
        text, _ = render(assistant.voicemail_message or assistant.first_message,
                         variables_for(contact, company,
                                       {"name": campaign.name} if campaign else None))
        call.messages = [{"role": "assistant", "text": text, "time": 0.0}]
        call.transcript = script.transcript(call.messages)
        return Hangup(event.carrier_call_id, 1.0 + len(text.split()) * 0.4)
    return Hangup(event.carrier_call_id, 0.5)
