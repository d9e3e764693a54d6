"""What happens when a call is placed, answered and ended: the runtime that calls down into
each domain, in one readable place.

Carrier events move a call along its timeline (``calls.timeline``); an answer hands the call
to the conversation (``conversation.runtime``); its end (:func:`finish_call`), in ONE
transaction, in this order:

1. the call row: status, outcome, reason, duration, lease released;
2. its timeline: ``call.hangup`` and ``call.completed`` (with their outbox events);
3. the post-call analysis is queued (``conversation.analysis.queue``), exactly once;
4. the contact: an opt-out sets do-not-call and queues the number for the team DNC list, an
   answer moves a new lead to ``contacted`` (``contact.updated``);
5. the enrollment: the retry rules (``dialer.rules.after_attempt``) decide its next status,
   through the enrollment transition rule;
6. per batch (:class:`Settlement`): the DNC rows, the concurrency slots given back, and the
   campaigns checked for completion (``campaigns.lifecycle.maybe_complete``).

Many endings share a transaction and a Settlement, so a batch writes each table with one
statement per shape and locks a hot campaign row once (docs/decisions/0011).

Every carrier event may arrive more than once (the simulated network and real carriers
deliver at least once), so each step checks the call's state and does nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from callfleet.assistants.models import Assistant
from callfleet.calls import slots
from callfleet.calls.models import Call
from callfleet.calls.timeline import add_event
from callfleet.campaigns.lifecycle import maybe_complete
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.campaigns.policy import retry_policy
from callfleet.carriers.base import Carrier, CarrierEvent
from callfleet.compliance.service import DncRow, add_many_to_dnc
from callfleet.conversation import runtime
from callfleet.conversation.analysis.queue import mark_for_analysis
from callfleet.conversation.runtime import Hangup
from callfleet.crm.events import emit_contact_updated
from callfleet.crm.models import Company, Contact
from callfleet.db.base import utcnow
from callfleet.db.session import Database
from callfleet.dialer import media, rules
from callfleet.teams.models import Team

log = structlog.get_logger("callfleet.calls")

# Carrier end reasons that are an outcome of their own (``carrier_<reason>``).
CARRIER_REASONS = frozenset({"busy", "no_answer", "declined", "failed", "invalid_number"})



@dataclass
class Settlement:
    """Work that many call endings in one transaction share: slots to give back and
    campaigns to check for completion, applied once per row at the end (a hot campaign row
    is then locked once per batch, not once per call)."""

    campaign_slots: Counter[str] = field(default_factory=Counter)
    team_slots: Counter[str] = field(default_factory=Counter)
    campaigns: set[str] = field(default_factory=set)
    # Numbers to add to team DNC lists.
    dnc: list[DncRow] = field(default_factory=list)
    # Voice slots to give back, per voice process (live voice calls only).
    voice_slots: Counter[str] = field(default_factory=Counter)

    async def apply(self, session: AsyncSession, at: datetime) -> None:
        if self.dnc:
            await add_many_to_dnc(session, self.dnc)
            self.dnc.clear()
        for campaign_id, n in sorted(self.campaign_slots.items()):
            await session.execute(
                update(Campaign).where(Campaign.id == campaign_id)
                .values(active_calls=func.max(Campaign.active_calls - n, 0)
                        if session.bind.dialect.name == "sqlite"
                        else func.greatest(Campaign.active_calls - n, 0))
            )
        for team_id, n in sorted(self.team_slots.items()):
            await session.execute(
                update(Team).where(Team.id == team_id)
                .values(active_calls=func.max(Team.active_calls - n, 0)
                        if session.bind.dialect.name == "sqlite"
                        else func.greatest(Team.active_calls - n, 0))
            )
        if self.voice_slots:
            await slots.release(session, self.voice_slots)
            self.voice_slots.clear()
        for campaign_id in sorted(self.campaigns):
            await maybe_complete(session, campaign_id, at)
        self.campaign_slots.clear()
        self.team_slots.clear()
        self.campaigns.clear()


async def load_call_context(session: AsyncSession, calls: list[Call]) -> list[Any]:
    """Load, with one query per table, every row that ending or advancing these calls reads
    (enrollments, contacts, their companies, campaigns, assistants) into the session, so the
    per-call ``session.get`` calls of ``finish_call`` and the conversation runtime find them
    without a query. Use with ``session.no_autoflush``: the batch's changes then reach the
    database in one flush, one executemany per table and statement shape. Keep the returned
    list while the batch runs (the session's identity map holds rows only weakly)."""
    def ids_of(rows: list[Any], attr: str) -> list[str]:
        return sorted({v for c in rows if (v := getattr(c, attr)) is not None})

    loaded: list[Any] = []
    for model, attr in ((Enrollment, "enrollment_id"), (Contact, "contact_id"),
                        (Campaign, "campaign_id"), (Assistant, "assistant_id")):
        wanted = ids_of(calls, attr)
        if wanted:
            rows = list(await session.scalars(select(model).where(model.id.in_(wanted))))
            loaded.extend(rows)
            if model is Contact:
                companies = ids_of(rows, "company_id")
                if companies:
                    loaded.extend(await session.scalars(
                        select(Company).where(Company.id.in_(companies))))
    return loaded


async def finish_call(
    session: AsyncSession, call: Call, outcome: str, ended_reason: str, at: datetime,
    settle: Settlement | None = None,
) -> bool:
    """End the call and apply the retry rules to its enrollment. False if already ended.

    With ``settle``, giving back the concurrency slot and the completion check are left to
    ``settle.apply`` (the caller's batch); without, they happen here."""
    if call.status == "ended":
        return False
    own = settle is None
    settle = settle or Settlement()
    call.status = "ended"
    call.outcome = outcome
    call.ended_reason = ended_reason
    call.ended_at = at
    call.lease_owner = None
    call.lease_expires_at = None
    if call.answered_at is not None:
        call.duration_seconds = round((at - call.answered_at).total_seconds(), 1)
    else:
        call.duration_seconds = 0.0
    call.updated_at = utcnow()
    add_event(session, call, "call.hangup", at, {"ended_reason": ended_reason})
    add_event(session, call, "call.completed", at, {"outcome": outcome})
    mark_for_analysis(session, call, at)  # post-call analysis, exactly once
    if call.campaign_id is not None:
        settle.campaign_slots[call.campaign_id] += 1
        settle.team_slots[call.team_id] += 1
    if call.voice_process_id is not None:
        settle.voice_slots[call.voice_process_id] += 1
    if call.contact_id is not None:
        await _apply_to_contact(session, call, outcome, at, settle)
    if (call.enrollment_id is not None and call.campaign_id is not None
            and await _apply_to_enrollment(session, call, outcome, at)):
        settle.campaigns.add(call.campaign_id)
    if own:
        await session.flush()
        await settle.apply(session, at)
    return True


async def _apply_to_contact(session: AsyncSession, call: Call, outcome: str,
                            at: datetime, settle: Settlement) -> None:
    contact = await session.get(Contact, call.contact_id)
    if contact is None:
        return
    if outcome == "opted_out":
        contact.do_not_call = True
        contact.lead_status = "do_not_contact"
        # An opt-out during a call revokes consent by a reasonable means (FCC 24-24).
        contact.consent_revoked_at = at
        contact.consent_revocation_channel = "call"
        contact.updated_at = utcnow()
        # The other party's number: the callee, or on an inbound call the caller.
        party = call.from_number if call.direction == "inbound" else call.to_number
        settle.dnc.append((call.team_id, party, "opted out during a call", "call", at))
        emit_contact_updated(session, contact, at, ["do_not_call", "lead_status"])
    elif outcome == "answered" and contact.lead_status == "new":
        contact.lead_status = "contacted"
        contact.updated_at = utcnow()
        # Same SET columns as an opt-out, so a batch's contacts are one executemany.
        for column in ("do_not_call", "consent_revoked_at", "consent_revocation_channel"):
            flag_modified(contact, column)
        emit_contact_updated(session, contact, at, ["lead_status"])


async def _apply_to_enrollment(session: AsyncSession, call: Call, outcome: str,
                               at: datetime) -> bool:
    """Apply the retry rules; True when the enrollment reached a final status."""
    enr = await session.get(Enrollment, call.enrollment_id)
    campaign = await session.get(Campaign, call.campaign_id)
    if enr is None or campaign is None or enr.status != "calling":
        return False
    counts = dict(enr.outcome_counts or {})
    counts[outcome] = counts.get(outcome, 0) + 1
    result = rules.after_attempt(outcome, enr.attempts, counts, retry_policy(campaign), at)
    status = result.enrollment_status
    rules.check_enrollment_transition(enr.status, status)
    if status == "pending" and campaign.status == "cancelled":
        # The campaign was cancelled while this call was in progress: the retry it would
        # have had is cancelled instead (calling -> pending -> cancelled).
        rules.check_enrollment_transition(status, "cancelled")
        status = "cancelled"
    enr.status = status
    enr.outcome_counts = counts
    enr.last_outcome = outcome
    enr.answered = enr.answered or outcome == "answered"
    enr.next_attempt_at = result.next_attempt_at if status == "pending" else None
    enr.reason = result.reason
    enr.updated_at = utcnow()
    # Every ending writes the same columns, so a batch's flush is one executemany (the ORM
    # batches only consecutive rows whose changed columns match).
    for name in ("answered", "next_attempt_at", "reason"):
        flag_modified(enr, name)
    return status != "pending"


class CallEvents:
    """Applies carrier events to calls. One instance per process."""

    def __init__(self, db: Database, carrier: Carrier) -> None:
        self.db = db
        self.carrier = carrier
        # The live voice session of a call learns the carrier's answering-machine verdict
        # from here when its pipeline runs in this process (``VoiceService.amd_verdict``,
        # set by the app); a voice process elsewhere reads it from the call's row.
        self.on_verdict: Callable[[str, str], bool] | None = None

    async def handle(self, event: CarrierEvent) -> None:
        await self.handle_many([event])

    async def handle_many(self, events: list[CarrierEvent]) -> None:
        """Apply events (in order) in one transaction; hangups the conversation asks for are
        sent to the carrier after the commit."""
        if not events:
            return
        hangups: list[Hangup] = []
        verdicts: list[tuple[str, str]] = []
        async with self.db.session() as s:
            call_ids = sorted({e.call_ref for e in events})
            stmt = select(Call).where(Call.id.in_(call_ids)).order_by(Call.id)
            if s.bind.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            calls = {c.id: c for c in await s.scalars(stmt)}
            context = await load_call_context(  # noqa: F841 (held for the batch)
                s, [c for c in calls.values() if c.status != "ended"])
            settle = Settlement()
            asked: list[tuple[Call, Hangup]] = []
            with s.no_autoflush:
                for event in events:
                    call = calls.get(event.call_ref)
                    if call is None or call.status == "ended":
                        continue
                    hangup = await self._apply(s, call, event, settle)
                    if hangup is not None:
                        asked.append((call, hangup))
                    if event.type in ("machine_detected", "human_detected") \
                            and media.is_voice(call, event):
                        verdicts.append((call.id, "machine" if event.type == "machine_detected"
                                         else "human"))
            # A call that already ended in this batch needs no hangup.
            hangups = [h for call, h in asked if call.status != "ended"]
            await s.flush()
            await settle.apply(s, max(e.at for e in events))
            await s.commit()
        if verdicts and self.on_verdict is not None:
            for call_id, kind in verdicts:
                try:
                    self.on_verdict(call_id, kind)
                except Exception:  # the session reads the verdict from the row anyway
                    log.exception("amd_verdict_delivery_failed", call_id=call_id)
        if hangups:
            hang_many = getattr(self.carrier, "hangup_many", None)
            if hang_many is not None:
                await hang_many([(h.carrier_call_id, h.after_seconds) for h in hangups])
            else:
                for h in hangups:
                    await self.carrier.hangup(h.carrier_call_id, h.after_seconds)

    async def _apply(self, s: AsyncSession, call: Call, event: CarrierEvent,
                     settle: Settlement) -> Hangup | None:
        if call.carrier_call_id is None:
            call.carrier_call_id = event.carrier_call_id
        if event.type == "ringing":
            if call.status in ("queued", "dialing"):
                call.status = "ringing"
                add_event(s, call, "call.ringing", event.at)
        elif event.type == "answered":
            if call.answered_at is None:
                call.status = "in_progress"
                call.answered_at = event.at
                add_event(s, call, "call.answered", event.at,
                          {"answered_by": event.data.get("answered_by", "human")})
                if event.data.get("audio"):
                    # The carrier streams the call's audio to a voice process, whose
                    # pipeline holds the conversation and ends the call.
                    media.on_answered(call, event)
                    return None
                if event.data.get("answered_by") != "machine":
                    return await runtime.on_answered(s, call, event)
        elif event.type == "machine_detected":
            if media.is_voice(call, event):
                return await media.on_machine(s, call, event)
            if not (call.call_metadata or {}).get("voicemail"):
                return await runtime.on_machine(s, call, event)
        elif event.type == "human_detected":
            media.on_human(s, call, event)
        elif event.type == "ended":
            outcome, reason = self._outcome(call, event)
            await finish_call(s, call, outcome, reason, event.at, settle)
        return None

    def _outcome(self, call: Call, event: CarrierEvent) -> tuple[str, str]:
        reason = event.data.get("reason", "completed")
        meta = call.call_metadata or {}
        if reason in CARRIER_REASONS:
            return reason, f"carrier_{reason}"
        if meta.get("voicemail"):
            return "voicemail", "voicemail"
        if (meta.get("conversation") == "voice" and "conversation_outcome" not in meta
                and call.messages):
            # The carrier ended a live voice call that a voice process was holding (it saved
            # the conversation so far) but never finished: the process died mid-call. The
            # transcript so far stays on the call.
            return "failed", "voice_process_lost"
        if call.answered_at is not None:
            return meta.get("conversation_outcome", "answered"), meta.get(
                "conversation_ended_reason", "customer_ended_call")
        return "no_answer", "carrier_no_answer"
