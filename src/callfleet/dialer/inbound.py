"""Calls *to* a callfleet number (inbound), answered by the number's assistant over a media
stream.

:func:`open_inbound` runs when the carrier announces the call (Twilio's voice webhook, Telnyx's
``call.initiated`` with ``direction: incoming``), after its signature held. The number must be
active and have an assistant that takes inbound calls; otherwise None, and the carrier route
plays a short message and hangs up. The caller is matched to one of the team's contacts by
phone; an unknown caller becomes a contact in the company the number names
(``phone_numbers.company_id``), else in the team's "Inbound callers" company (created when
first needed). The call is written answered and ``conversation: voice``, with
``direction: inbound``; from there it is an ordinary voice call: the media session runs the
assistant, and the call ends through ``dialer.outcomes.finish_call`` (analysis, write-back,
webhooks, an opt-out onto the team's DNC list). A carrier repeating the webhook gets the same
call. docs/decisions/0042-inbound-calls.md
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import phonenumbers
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.assistants.models import Assistant
from callfleet.calls.models import Call
from callfleet.calls.timeline import add_event
from callfleet.crm import service as crm
from callfleet.crm.models import Company, Contact
from callfleet.db.base import utcnow
from callfleet.db.session import Database
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.principal import Principal, TeamScope

log = structlog.get_logger("callfleet.inbound")

INBOUND_COMPANY = "Inbound callers"
MAX_NUMBER_CHARS = 32


@dataclass(frozen=True)
class InboundCall:
    call_id: str
    team_id: str
    contact_id: str | None
    created_contact: bool


def _e164(number: str | None, region: str) -> str | None:
    if not number or len(number) > MAX_NUMBER_CHARS:
        return None
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def _company(s: AsyncSession, scope: TeamScope, number: PhoneNumber) -> str:
    if number.company_id is not None:
        found = await s.scalar(scope.select(Company.id).where(Company.id == number.company_id))
        if found is not None:
            return str(found)
    found = await s.scalar(scope.select(Company.id)
                           .where(Company.name_lower == INBOUND_COMPANY.lower()).limit(1))
    if found is not None:
        return str(found)
    company = Company(id=ids.new_id("comp"), team_id=scope.team_id, name=INBOUND_COMPANY,
                      name_lower=INBOUND_COMPANY.lower(), custom_fields={})
    s.add(company)
    await s.flush()
    return company.id


async def open_inbound(db: Database, provider: str, to_number: str | None,
                       from_number: str | None, carrier_call_id: str, at: datetime, *,
                       region: str = "US") -> InboundCall | None:
    """The inbound call to ``to_number`` (written, or found when the carrier repeats its
    webhook), or None when the number cannot take it (unknown, suspended, no assistant
    taking inbound calls)."""
    to = _e164(to_number, region)
    if to is None or not carrier_call_id or len(carrier_call_id) > 100:
        return None
    caller = _e164(from_number, region) or (from_number or "anonymous")[:MAX_NUMBER_CHARS]
    async with db.session() as s:
        number = await s.scalar(select(PhoneNumber).where(PhoneNumber.phone_number == to))
        if number is None or number.provider != provider or number.status != "active" \
                or number.assistant_id is None:
            return None
        scope = TeamScope(number.team_id)
        assistant = await s.scalar(scope.select(Assistant)
                                   .where(Assistant.id == number.assistant_id))
        if assistant is None or not assistant.inbound_enabled:
            return None
        again = await s.scalar(scope.select(Call).where(
            Call.carrier == provider, Call.carrier_call_id == carrier_call_id))
        if again is not None:
            return InboundCall(again.id, again.team_id, again.contact_id, False)
        contact_id = await s.scalar(scope.select(Contact.id)
                                    .where(Contact.phone == caller)
                                    .order_by(Contact.created_at).limit(1))
        created = False
        if contact_id is None and caller.startswith("+"):
            company_id = await _company(s, scope, number)
            principal = Principal(number.team_id, "", "inbound")
            contact = await crm.create_contact(
                db, principal, {"first_name": "Unknown", "last_name": "caller",
                                "phone": caller, "company_id": company_id,
                                "source": "inbound call"}, region, session=s)
            contact_id, created = contact["id"], True
        call = Call(id=ids.new_id("call"), team_id=number.team_id, direction="inbound",
                    contact_id=contact_id, assistant_id=assistant.id, from_number=caller,
                    to_number=to, status="in_progress", carrier=provider,
                    carrier_call_id=carrier_call_id, started_at=at, answered_at=at,
                    messages=[], analysis={}, call_metadata={"conversation": "voice",
                                                             "inbound": True},
                    created_at=utcnow(), updated_at=utcnow())
        s.add(call)
        await s.flush()
        add_event(s, call, "call.answered", at, {"answered_by": "human",
                                                 "direction": "inbound"})
        await s.commit()
    log.info("inbound_call", call_id=call.id, provider=provider, new_contact=created)
    return InboundCall(call.id, number.team_id, contact_id, created)
