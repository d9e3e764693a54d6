"""The dialer engine: a thin loop around the pure rules (dialer.rules).

Each pass: start scheduled campaigns that are due, reconcile calls whose lease expired,
claim due enrollments and place their calls, and let the simulated network deliver due
events. Any number of processes may run it against the same database; correctness lives
in the tables:

- a slot is taken by a conditional ``UPDATE campaigns SET active_calls = active_calls + 1
  WHERE active_calls < max_concurrent_calls`` (same for the team) in the same transaction
  that moves the enrollment to ``calling`` and inserts the call row, so limits hold across
  workers and crashes;
- enrollments are claimed under ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite serialises
  writers with ``BEGIN IMMEDIATE``);
- the call row (unique per enrollment and attempt) is committed as ``dialing`` before the
  carrier is asked; a call whose worker died is reconciled with the carrier after its
  lease expires, never re-dialed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import BigInteger, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.calls import slots
from callfleet.calls.models import ACTIVE_CALL_STATUSES, Call
from callfleet.calls.timeline import add_event
from callfleet.campaigns import enrollments, lifecycle
from callfleet.campaigns.models import Campaign, Enrollment
from callfleet.campaigns.policy import call_window, legal_hours
from callfleet.carriers.base import Carrier, CarrierCallStatus, CarrierRejected
from callfleet.clock import Clock
from callfleet.compliance import audit, dialing
from callfleet.compliance.caps import PastCall
from callfleet.compliance.models import (
    DialDecision,
    DncEntry,
    SuppressedNumber,
    SuppressionList,
)
from callfleet.config import Settings
from callfleet.crm.models import Contact
from callfleet.db.base import UTCDateTime, utcnow
from callfleet.db.session import Database
from callfleet.db.staging import stage
from callfleet.dialer import rules
from callfleet.dialer.due import next_due
from callfleet.dialer.outcomes import CallEvents, Settlement, finish_call, load_call_context
from callfleet.numbers.models import PhoneNumber
from callfleet.teams.models import Team
from callfleet.teams.principal import TeamScope
from callfleet.wakeup import IdleWait, due_in_seconds

log = structlog.get_logger("callfleet.dialer")
#: How often a dialer process deletes dial decisions past their retention.
PURGE_EVERY_SECONDS = 3600.0
AUDIENCE_SECONDS = 5.0  # how often running all_eligible campaigns look for new contacts


@dataclass(frozen=True)
class Placement:
    call_id: str | None  # None in a dry run
    from_number: str
    to_number: str
    contact_id: str
    enrollment_id: str


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dialer:
    def __init__(
        self, db: Database, clock: Clock, carrier: Carrier, settings: Settings,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.carrier = carrier
        self.settings = settings
        self.worker_id = worker_id or worker_name()
        self.events = CallEvents(db, carrier)
        self.compliance = dialing.Gate()
        self._last_audience = 0.0
        self._last_purge = 0.0

    # ------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        log.info("dialer_started", worker=self.worker_id)
        with IdleWait(self.db, "dialer", base=self.settings.dialer_tick_seconds,
                      cap=self.settings.idle_max_seconds) as idle:
            while not stop.is_set():
                idle.arm()
                try:
                    busy = await self.tick()
                except Exception:
                    log.exception("dialer_pass_failed", worker=self.worker_id)
                    busy = 0
                # Idle: wait, longer after each idle pass, until woken by new work or the
                # next due time (wakeup.IdleWait). A small pass: wait a little, so that the
                # next pass finds a batch (each pass costs a dozen statements whatever its
                # size; with several workers sharing a trickle, passes back to back would
                # each take a few calls). A big pass: go on at once.
                if not busy:
                    await idle.idle(stop, self._due_in)
                    continue
                idle.busy()
                if busy < self.settings.dialer_batch // 4:
                    await idle.sleep(stop, self.settings.dialer_pace_seconds)
                else:
                    await asyncio.sleep(0)

    async def _due_in(self) -> float | None:
        """Real seconds until the dialer's next known work (dialer/due.py)."""
        now = self.clock.now()
        loop_time = asyncio.get_running_loop().time()
        audience_at = now + self.clock.sim_delta(
            max(0.0, AUDIENCE_SECONDS - (loop_time - self._last_audience)))
        due = await next_due(self.db, now, audience_at)
        next_event_at = getattr(self.carrier, "next_event_at", None)
        if next_event_at is not None:
            carrier_due = await next_event_at()
            if carrier_due is not None and (due is None or carrier_due < due):
                due = carrier_due
        return due_in_seconds(self.clock, due)

    async def tick(self) -> int:
        """One pass; returns how much work it did (0 = idle). Carrier events go first so
        that slots freed by calls that just ended are used in the same pass."""
        now = self.clock.now()
        work = await self.promote_scheduled(now)
        work += await self.reconcile(now)
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_audience > AUDIENCE_SECONDS:
            self._last_audience = loop_time
            work += await self.enroll_audiences(now)
        if loop_time - self._last_purge > PURGE_EVERY_SECONDS:
            self._last_purge = loop_time
            await self.purge_decisions(now)
        pump = getattr(self.carrier, "pump", None)
        if pump is not None:
            work += await pump(self.events.handle_many, limit=self.settings.dialer_batch,
                               claim_seconds=self.settings.lease_seconds)
        placements = await self.claim(self.clock.now())
        await self.place(placements)
        return work + len(placements)

    async def purge_decisions(self, now: datetime) -> int:
        """Dial decisions past their team's retention (default five years) are deleted."""
        async with self.db.session() as s:
            removed = await audit.purge_decisions(s, now)
            await s.commit()
        if removed:
            log.info("dial_decisions_purged", removed=removed)
        return removed

    # ------------------------------------------------------------ scheduled starts

    async def promote_scheduled(self, now: datetime) -> int:
        due = (select(Campaign.id)
               .where(Campaign.status == "scheduled", Campaign.scheduled_start_at <= now,
                      Campaign.deleted_at.is_(None)).limit(1))
        async with self.db.session(write=False) as s:
            if await s.scalar(due) is None:
                return 0  # idle passes take no write lock
        async with self.db.session() as s:
            stmt = (select(Campaign)
                    .where(Campaign.status == "scheduled", Campaign.scheduled_start_at <= now,
                           Campaign.deleted_at.is_(None)).order_by(Campaign.id))
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            started = list(await s.scalars(stmt))
            for c in started:
                lifecycle.start_scheduled(s, c, now)
            await s.commit()
            return len(started)

    async def enroll_audiences(self, now: datetime) -> int:
        """``audience: all_eligible``: enroll the company's new callable contacts."""
        async with self.db.session(write=False) as s:
            if await s.scalar(select(Campaign.id).where(
                    Campaign.status == "running", Campaign.audience == "all_eligible",
                    Campaign.deleted_at.is_(None)).limit(1)) is None:
                return 0
        async with self.db.session() as s:
            campaigns = list(await s.scalars(
                select(Campaign).where(Campaign.status == "running",
                                       Campaign.audience == "all_eligible",
                                       Campaign.deleted_at.is_(None))
            ))
            added = 0
            for c in campaigns:
                added += await enrollments.enroll_company_contacts(s, c, now)
            await s.commit()
            return added

    # ------------------------------------------------------------ claiming

    async def claim(self, now: datetime) -> list[Placement]:
        placements: list[Placement] = []
        async with self.db.session(write=False) as s:
            has_room = await s.scalar(
                select(Campaign.id)
                .where(Campaign.status == "running", Campaign.deleted_at.is_(None),
                       Campaign.active_calls < Campaign.max_concurrent_calls).limit(1))
            if has_room is None:
                return placements
        async with self.db.session() as s:
            campaigns = list(await s.scalars(
                select(Campaign)
                .where(Campaign.status == "running", Campaign.deleted_at.is_(None),
                       Campaign.active_calls < Campaign.max_concurrent_calls)
                .order_by(Campaign.id)
            ))
            budget = self.settings.dialer_batch
            for c in campaigns:
                if budget <= 0:
                    break
                got = await self._claim_campaign(s, c, now, budget)
                budget -= len(got)
                placements.extend(got)
            await s.commit()
        return placements

    async def claim_campaign(
        self, campaign_id: str, now: datetime, budget: int, *, dry_run: bool = False
    ) -> list[Placement]:
        """Claim (or, dry, only choose) up to ``budget`` calls of one campaign now."""
        async with self.db.session() as s:
            c = await s.get(Campaign, campaign_id)
            if c is None or c.status != "running" and not dry_run:
                return []
            placements = await self._claim_campaign(s, c, now, budget, dry_run=dry_run)
            if dry_run:
                await s.rollback()
            else:
                await s.commit()
        return placements

    async def _claim_campaign(
        self, s: AsyncSession, c: Campaign, now: datetime, budget: int, *, dry_run: bool = False
    ) -> list[Placement]:
        """Claim a batch of one campaign's due enrollments in a few set-based statements:
        one SELECT of the candidates (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), the dial-time
        rules in Python, one conditional UPDATE each on the campaign and the team for the
        whole batch's slots, one executemany each for the enrollments, the calls and their
        events."""
        free = c.max_concurrent_calls - c.active_calls
        if free <= 0:
            return []
        scope = TeamScope(c.team_id)
        numbers = list(await s.execute(
            scope.select(PhoneNumber.id, PhoneNumber.phone_number, PhoneNumber.provider)
            .where(PhoneNumber.id.in_(c.from_number_ids or []), PhoneNumber.status == "active")
        ))
        order = {nid: i for i, nid in enumerate(c.from_number_ids or [])}
        active = sorted(((n.id, n.phone_number) for n in numbers), key=lambda n: order[n[0]])
        provider_of = {n.id: n.provider for n in numbers}  # a call uses its number's carrier
        if not active:
            if dry_run:
                return []
            lifecycle.pause_without_numbers(s, c, now)
            return []
        by_number = dict(active)
        team = await s.get(Team, c.team_id)
        assert team is not None
        cps = float((team.settings or {}).get("calls_per_second",
                                              self.settings.team_calls_per_second))
        tokens = 0.0
        if cps > 0 and not dry_run:
            if not self.db.is_sqlite:  # the pacing bucket is read-modify-write
                team = await s.get(Team, c.team_id, with_for_update=True,
                                   populate_existing=True)
                assert team is not None
            tokens = rules.pacing_tokens(team.pacing_tokens, team.pacing_at, now, cps)
            budget = min(budget, int(tokens))
            if budget <= 0:
                return []
        legal = legal_hours(team.settings, self.settings.legal_hours_start,
                            self.settings.legal_hours_end)
        team_max = int((team.settings or {}).get("max_concurrent_calls",
                                                 self.settings.team_max_concurrent_calls))
        want = min(budget, free)
        on_dnc = scope.exists(DncEntry, DncEntry.phone_number == Contact.phone,
                              DncEntry.removed_at.is_(None))
        stmt = (
            select(Enrollment.id, Enrollment.contact_id, Enrollment.status,
                   Enrollment.next_attempt_at, Enrollment.attempts, Enrollment.from_number_id,
                   Contact.phone, Contact.do_not_call, Contact.lead_status, Contact.timezone,
                   Contact.state, Contact.postal_code, Contact.country, Contact.consent_kind,
                   Contact.consent_revoked_at, on_dnc.label("on_dnc"))
            .join(Contact, Contact.id == Enrollment.contact_id)
            .where(Enrollment.campaign_id == c.id, Enrollment.status == "pending",
                   or_(Enrollment.next_attempt_at.is_(None), Enrollment.next_attempt_at <= now))
            .order_by(Enrollment.priority.desc(), Enrollment.next_attempt_at.asc().nulls_first(),
                      Enrollment.id)
            .limit(want * 3 + 10)
        )
        # National Do Not Call Registry lists bind telemarketing calls only; the probe is
        # added when the team has imported one.
        national = c.purpose == "telemarketing" and await s.scalar(
            scope.select(SuppressionList.id).limit(1)) is not None
        if national:
            stmt = stmt.add_columns(scope.exists(
                SuppressedNumber, SuppressedNumber.phone_number == Contact.phone
            ).label("on_national"))
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True, of=Enrollment)
        rows = list(await s.execute(stmt))
        windows: dict[str, rules.CallWindow] = {}
        chosen: list[tuple[Any, str]] = []  # (row, caller-ID number id)
        skipped: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []
        campaign_status = "running" if dry_run else c.status
        gate = self.compliance
        tc = dialing.team_compliance(team.settings, gate.table)
        scope = gate.scope(tc, c.purpose, c.consent_check)
        purpose = scope.purpose
        audit: list[dict[str, Any]] = []  # dial_decisions rows of refusals and deferrals
        decided: dict[str, Any] = {}  # enrollment id -> the allow decision
        # Per candidate, once: its jurisdictions (for the caps and the decision); per
        # (jurisdictions, window) in this claim, once: the composed schedule.
        jsets = {row.id: gate.jurisdictions(
            tc, state=row.state, postal_code=row.postal_code, country=row.country,
            phone=row.phone, contact_tz=row.timezone, fallback_zone=c.call_window_timezone)
            for row in rows if row.phone}
        schedules: dict[tuple[int, int], tuple[Any, Any, Any]] = {}
        history, busy = await self._cap_history(s, c, tc, scope, rows, jsets, now, dry_run)
        for row in rows:
            if len(chosen) >= want:
                break
            if row.phone in busy:
                continue  # another worker is deciding a call to this number right now
            if national and row.on_national:
                if not dry_run:
                    skipped.append({"eid": row.id, "reason": "dnc_national_listed"})
                    audit.append(dialing.dnc_audit_row(
                        "dnc_national_listed", now, team_id=c.team_id, campaign_id=c.id,
                        enrollment_id=row.id, contact_id=row.contact_id, phone=row.phone,
                        purpose=purpose, table=gate.table))
                continue
            tz, _source = rules.effective_timezone(
                contact_tz=row.timezone, phone=row.phone, campaign_tz=c.call_window_timezone,
                use_contact_timezone=c.use_contact_timezone,
            )
            # Legal hours are always the recipient's own, whatever the campaign says.
            local_tz, _ = rules.effective_timezone(
                contact_tz=row.timezone, phone=row.phone, campaign_tz=c.call_window_timezone,
                use_contact_timezone=True,
            )
            window = windows.get(tz)
            if window is None:
                window = windows[tz] = call_window(c, tz)
            decision = rules.is_dialable(
                rules.DialInput(
                    campaign_status=campaign_status, campaign_deleted=c.deleted_at is not None,
                    enrollment_status=row.status, next_attempt_at=row.next_attempt_at,
                    phone=row.phone, do_not_call=bool(row.do_not_call),
                    lead_status=row.lead_status, on_team_dnc=bool(row.on_dnc), window=window,
                    legal=legal, contact_tz=local_tz,
                    campaign_active_calls=c.active_calls + len(chosen),
                    max_concurrent_calls=c.max_concurrent_calls,
                    team_active_calls=team.active_calls, team_max_concurrent=team_max,
                ),
                now,
            )
            judged = None
            if decision.ok or decision.reason in ("outside_window", "outside_legal_hours"):
                # The compliance engine: every jurisdiction's rules, caps and consent.
                jset = jsets.get(row.id) or gate.jurisdictions(
                    tc, state=row.state, postal_code=row.postal_code, country=row.country,
                    phone=row.phone, contact_tz=row.timezone,
                    fallback_zone=c.call_window_timezone)
                key = (id(jset), id(window))
                known = schedules.get(key)
                if known is None:  # (the tuple holds jset and window: their ids stay theirs)
                    known = schedules[key] = (
                        jset, window, gate.schedule(tc, jset, scope, window, legal, now))
                judged = gate.decide(
                    tc, jset, scope, known[2], now,
                    consent=dialing.consent_of(row.consent_kind, row.consent_revoked_at),
                    history=history.get(row.phone, ()))
                if not judged.allowed:
                    if dry_run:
                        continue
                    rule = judged.rules_fired[0] if judged.rules_fired else ""
                    if judged.outcome == "skip":
                        skipped.append({"eid": row.id, "reason": f"{judged.reason}:{rule}"})
                    else:
                        later.append({"eid": row.id, "reason": f"{judged.reason}:{rule}",
                                      "next": judged.next_allowed_at or now + timedelta(days=1)})
                    audit.append(dialing.audit_row(
                        judged, team_id=c.team_id, campaign_id=c.id, enrollment_id=row.id,
                        contact_id=row.contact_id, phone=row.phone, purpose=purpose))
                    continue
            if not decision.ok:
                if dry_run:
                    if decision.reason in ("campaign_concurrency", "team_concurrency"):
                        break
                    continue
                if decision.permanent:
                    skipped.append({"eid": row.id, "reason": decision.reason})
                    audit.append(dialing.dnc_audit_row(
                        decision.reason or "refused", now, team_id=c.team_id,
                        campaign_id=c.id, enrollment_id=row.id, contact_id=row.contact_id,
                        phone=row.phone, purpose=purpose, table=gate.table))
                elif decision.reason in ("outside_window", "outside_legal_hours", "not_due"):
                    later.append({"eid": row.id, "reason": decision.reason,
                                  "next": decision.next_time or now + timedelta(days=1)})
                else:
                    break  # capacity: nothing more for this campaign now
                continue
            if judged is not None:
                decided[row.id] = judged
                if row.phone in history or tc.team_cap is not None:
                    # Counted at once: a second enrollment for the same number in this batch
                    # sees this call.
                    history.setdefault(row.phone, []).append(PastCall(now))
            number_id = row.from_number_id
            if number_id not in by_number:
                number_id = rules.caller_id_pick(row.id, active, row.phone)
            assert number_id is not None
            chosen.append((row, number_id))
        if dry_run:
            return [Placement(None, by_number[nid], row.phone, row.contact_id, row.id)
                    for row, nid in chosen]
        pace = getattr(self.carrier, "pace", None)  # per carrier account (carriers.pacing)
        if pace is not None and chosen:
            fits = await pace(s, c.team_id, [provider_of[nid] for _, nid in chosen], now)
            chosen = [pick for pick, ok in zip(chosen, fits, strict=True) if ok]
        stamp = utcnow()
        t = Enrollment.__table__.c
        if skipped:
            await s.execute(
                enrollments.move("pending", "skipped").where(t.id == bindparam("eid"))
                .values(reason=bindparam("reason"), updated_at=stamp),
                skipped)
        if later:
            await s.execute(
                update(Enrollment.__table__).where(t.id == bindparam("eid"))
                .values(next_attempt_at=bindparam("next", type_=UTCDateTime),
                        reason=bindparam("reason"), updated_at=stamp),
                later)
        voice_slot: dict[str, str] = {}  # enrollment id -> the voice process reserved
        if chosen and self._live_voice(provider_of):
            chosen = await self._reserve_voice(s, chosen, provider_of, voice_slot, now)
        granted = await self._take_slots(s, c, team_max, len(chosen)) if chosen else 0
        if voice_slot and granted < len(chosen):
            unused = Counter(voice_slot.pop(row.id) for row, _ in chosen[granted:]
                             if row.id in voice_slot)
            await slots.release(s, unused)
        chosen = chosen[:granted]
        placed: list[Placement] = []
        claims: list[dict[str, Any]] = []
        lease_until = now + self.clock.sim_delta(self.settings.lease_seconds)
        for row, number_id in chosen:
            attempt = row.attempts + 1
            from_number = by_number[number_id]
            call = Call(
                id=ids.new_id("call"), team_id=c.team_id, direction="outbound",
                campaign_id=c.id, enrollment_id=row.id, contact_id=row.contact_id,
                assistant_id=c.assistant_id, from_number=from_number, to_number=row.phone,
                status="dialing", attempt=attempt, started_at=now,
                carrier=provider_of[number_id], messages=[], analysis={}, call_metadata={},
                lease_owner=self.worker_id, lease_expires_at=lease_until,
                voice_process_id=voice_slot.get(row.id),
                created_at=stamp, updated_at=stamp,
            )
            s.add(call)
            add_event(s, call, "call.initiated", now, {"attempt": attempt})
            claims.append({"eid": row.id, "attempts": attempt, "number": number_id,
                           "call_id": call.id})
            judged = decided.get(row.id)
            if judged is not None:
                audit.append(dialing.audit_row(
                    judged, team_id=c.team_id, campaign_id=c.id, enrollment_id=row.id,
                    contact_id=row.contact_id, phone=row.phone, purpose=purpose,
                    call_id=call.id))
            placed.append(Placement(call.id, from_number, row.phone, row.contact_id, row.id))
        if claims:
            await s.execute(
                enrollments.move("pending", "calling").where(t.id == bindparam("eid"))
                .values(attempts=bindparam("attempts"),
                        from_number_id=bindparam("number"), reason=None,
                        last_call_id=bindparam("call_id"), updated_at=stamp),
                claims)
        for decision_row in dialing.with_ids(audit):
            stage(s, DialDecision.__table__, decision_row)
        if cps > 0:
            team.pacing_tokens = tokens - len(placed)
            team.pacing_at = now
        await s.flush()
        if skipped and not placed:
            await lifecycle.maybe_complete(s, c.id, now)
        return placed

    def _live_voice(self, provider_of: dict[str, str]) -> bool:
        """Whether any of these numbers' calls is held by live voice (a real carrier's
        media stream, or the simulated network in audio mode): only then is a voice slot
        reserved, so text-simulated calls run no statement more."""
        return any(self.needs_voice(p) for p in provider_of.values())

    def needs_voice(self, provider: str) -> bool:
        if not self.settings.voice_slots:
            return False
        return provider != "sim" or bool(self.settings.sim_audio)

    async def _reserve_voice(self, s: AsyncSession, chosen: list[tuple[Any, str]],
                             provider_of: dict[str, str], voice_slot: dict[str, str],
                             now: datetime) -> list[tuple[Any, str]]:
        """A voice slot for each chosen call that needs one, in this transaction; a call
        that gets none is not placed (its enrollment stays due for a later pass)."""
        wanting = [row.id for row, nid in chosen if self.needs_voice(provider_of[nid])]
        if not wanting:
            return chosen
        granted = await slots.reserve(s, len(wanting), now)
        voice_slot.update(zip(wanting, granted))
        if len(granted) < len(wanting):
            slots.FULL.inc(len(wanting) - len(granted))
            log.info("voice_slots_full", wanted=len(wanting), granted=len(granted))
        return [(row, nid) for row, nid in chosen
                if row.id in voice_slot or not self.needs_voice(provider_of[nid])]

    async def _cap_history(
        self, s: AsyncSession, c: Campaign, tc: dialing.TeamCompliance, scope: Any,
        rows: list[Any], jsets: dict[str, Any], now: datetime, dry_run: bool,
    ) -> tuple[dict[str, list[PastCall]], set[str]]:
        """The team's recent calls to every candidate number a frequency cap applies to,
        across all its campaigns: ``({phone: calls}, numbers to leave for this pass)``.

        On PostgreSQL each such number is first locked for this transaction with a
        ``pg_try_advisory_xact_lock`` keyed by (team, number): the lock is held until the
        call rows are committed, so two workers can never both count the same calls and
        both place the call a cap allows only once. A number another worker holds is left
        for the next pass (a try-lock never waits, so no deadlock)."""
        gate = self.compliance
        capped: dict[str, int] = {}
        caps_of: dict[int, tuple[Any, list[Any]]] = {}  # id(jset) -> (jset, its caps)
        for row in rows:
            if not row.phone or row.phone in capped:
                continue
            jset = jsets[row.id]
            known = caps_of.get(id(jset))
            if known is None:
                known = caps_of[id(jset)] = (jset, gate.caps(tc, jset, scope, now))
            caps = known[1]
            if caps:
                capped[row.phone] = max(int(cap.per.total_seconds()) for cap in caps)
        if not capped:
            return {}, set()
        busy: set[str] = set()
        if not self.db.is_sqlite and not dry_run:
            keys = {dialing.cap_lock_key(c.team_id, phone): phone for phone in capped}
            got = await s.execute(
                text("SELECT k, pg_try_advisory_xact_lock(k) FROM unnest(:keys) AS k")
                .bindparams(bindparam("keys", list(keys), type_=ARRAY(BigInteger))))
            busy = {keys[k] for k, ok in got if not ok}
        look_back = now - timedelta(seconds=max(capped.values()))
        history: dict[str, list[PastCall]] = {phone: [] for phone in capped}
        calls = await s.execute(
            TeamScope(c.team_id).select(Call.to_number, Call.started_at, Call.answered_at)
            .where(Call.to_number.in_([p for p in capped if p not in busy]),
                   Call.started_at > look_back))
        for phone, started, answered in calls:
            history[phone].append(PastCall(started, completed=answered is not None))
        return history, busy

    async def _take_slots(self, s: AsyncSession, c: Campaign, team_max: int, n: int) -> int:
        """Take up to ``n`` concurrency slots on the campaign and the team; returns how many.

        The common case is one conditional UPDATE per row for the whole batch; when the batch
        does not fit, the row is locked and read, and what is left is taken."""
        campaigns = Campaign.__table__.c
        got = await s.execute(
            update(Campaign.__table__)
            .where(campaigns.id == c.id, campaigns.status == "running",
                   campaigns.active_calls + n <= campaigns.max_concurrent_calls)
            .values(active_calls=campaigns.active_calls + n))
        if not got.rowcount:  # type: ignore[attr-defined]
            stmt = (select(campaigns.active_calls, campaigns.max_concurrent_calls,
                           campaigns.status).where(campaigns.id == c.id))
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update()
            row = (await s.execute(stmt)).one_or_none()
            if row is None or row.status != "running":
                return 0
            n = min(n, row.max_concurrent_calls - row.active_calls)
            if n <= 0:
                return 0
            await s.execute(update(Campaign.__table__).where(campaigns.id == c.id)
                            .values(active_calls=campaigns.active_calls + n))
        teams = Team.__table__.c
        team = teams.id == c.team_id  # tenancy: system (the campaign's own team row)
        got = await s.execute(
            update(Team.__table__)
            .where(team, teams.active_calls + n <= team_max)
            .values(active_calls=teams.active_calls + n))
        if got.rowcount:  # type: ignore[attr-defined]
            return n
        stmt = select(teams.active_calls).where(team)
        if not self.db.is_sqlite:
            stmt = stmt.with_for_update()
        team_active = int(await s.scalar(stmt) or 0)
        fits = max(0, min(n, team_max - team_active))
        if fits:
            await s.execute(update(Team.__table__).where(team)
                            .values(active_calls=teams.active_calls + fits))
        await s.execute(update(Campaign.__table__).where(campaigns.id == c.id)
                        .values(active_calls=campaigns.active_calls - (n - fits)))
        return fits

    # ------------------------------------------------------------ placing

    async def place(self, placements: list[Placement]) -> None:
        """Ask the carrier to dial committed call rows; record its ids, finish rejections."""
        if not placements:
            return
        dials = [(p.call_id, p.from_number, p.to_number) for p in placements
                 if p.call_id is not None]
        place_many = getattr(self.carrier, "place_calls", None)
        results: list[str | CarrierRejected | None] = []
        try:
            if place_many is not None:
                results = list(await place_many(dials))
            else:
                for ref, src, dst in dials:
                    try:
                        results.append(await self.carrier.place_call(ref, src, dst))
                    except CarrierRejected as exc:
                        results.append(exc)
        except Exception:
            log.exception("dial_failed", calls=len(dials))
            return
        placed = [{"cid": ref, "carrier_id": r} for (ref, _, _), r in zip(dials, results)
                  if isinstance(r, str)]
        rejected = [(ref, r) for (ref, _, _), r in zip(dials, results)
                    if isinstance(r, CarrierRejected)]
        async with self.db.session() as s:
            if placed:
                await s.execute(
                    update(Call.__table__)
                    .where(Call.__table__.c.id == bindparam("cid"),
                           Call.__table__.c.carrier_call_id.is_(None))
                    .values(carrier_call_id=bindparam("carrier_id")),
                    placed,
                )
            if rejected:
                settle = Settlement()
                now = self.clock.now()
                stmt = select(Call).where(Call.id.in_(sorted(ref for ref, _ in rejected)))
                if not self.db.is_sqlite:
                    stmt = stmt.order_by(Call.id).with_for_update()
                calls = {c.id: c for c in await s.scalars(stmt)}
                context = await load_call_context(  # noqa: F841 (held for the batch)
                    s, list(calls.values()))
                paused: dict[str, str] = {}
                with s.no_autoflush:
                    for ref, exc in rejected:
                        call = calls.get(ref)
                        if call is not None:
                            if exc.detail != exc.reason:  # the carrier's whole message
                                call.call_metadata = {**(call.call_metadata or {}),
                                                      "carrier_error": exc.detail}
                            await finish_call(s, call, exc.outcome,
                                              f"carrier_rejected: {exc.reason}"[:80], now,
                                              settle)
                            if exc.account_error and call.campaign_id:
                                paused[call.campaign_id] = exc.detail
                await s.flush()
                await settle.apply(s, now)
                for campaign_id, reason in sorted(paused.items()):
                    # The carrier refuses the account itself: every further dial would fail
                    # the same way, so the campaign stops instead of burning its contacts.
                    await lifecycle.pause_for_carrier(s, campaign_id, now, reason)
            await s.commit()

    async def place_single(self, call_id: str, from_number: str, to_number: str) -> None:
        """Dial a call row committed elsewhere (POST /api/crm/calls)."""
        await self.place([Placement(call_id, from_number, to_number, "", "")])

    # ------------------------------------------------------------ recovery

    async def reconcile(self, now: datetime, limit: int = 500) -> int:
        """Calls whose lease expired: ask the carrier what happened, never re-dial.

        A batch at a time: one read of the expired calls, one carrier status lookup for all
        of them (``call_statuses`` when the carrier has it), then one transaction that
        renews the lease of those still live at the carrier (one executemany, guarded by
        "still active and still expired") and ends, under row locks, those the carrier
        reports ended or never dialed."""
        async with self.db.session(write=False) as s:
            stale = list(await s.scalars(
                select(Call.id)
                .where(Call.status.in_(ACTIVE_CALL_STATUSES), Call.lease_expires_at < now)
                .order_by(Call.lease_expires_at).limit(limit)
            ))
        if not stale:
            return 0
        many = getattr(self.carrier, "call_statuses", None)
        if many is not None:
            statuses: dict[str, CarrierCallStatus | None] = await many(stale)
        else:
            statuses = {ref: await self.carrier.call_status(ref) for ref in stale}
        # A real carrier's record of a call that ended while its callbacks were lost: apply
        # it as those callbacks would have been (idempotent, like them).
        replay = [e for st in statuses.values() if st is not None for e in st.events]
        if replay:
            await self.events.handle_many(replay)
            statuses = {ref: st for ref, st in statuses.items() if st is None or not st.events}

        def ending(st: CarrierCallStatus | None) -> bool:
            return st is None or st.state == "refused" or (
                st.state == "ended" and st.outcome in ("busy", "no_answer", "declined", "failed"))

        # Still live at the carrier (or ended normally and its event is on the way): keep
        # watching.
        renew = [{"cid": ref, "carrier_id": st.carrier_call_id or None}
                 for ref, st in sorted(statuses.items()) if st is not None and not ending(st)]
        end = sorted(ref for ref, st in statuses.items() if ending(st))
        t = Call.__table__.c
        async with self.db.session() as s:
            if renew:
                await s.execute(
                    update(Call.__table__)
                    .where(t.id == bindparam("cid"),  # (no IN list in an executemany)
                           or_(*(t.status == st for st in ACTIVE_CALL_STATUSES)),
                           t.lease_expires_at < now)
                    .values(lease_owner=self.worker_id,
                            lease_expires_at=now + self.clock.sim_delta(
                                self.settings.lease_seconds),
                            carrier_call_id=func.coalesce(t.carrier_call_id,
                                                          bindparam("carrier_id"))),
                    renew)
            if end:
                stmt = (select(Call).where(Call.id.in_(end),
                                           Call.status.in_(ACTIVE_CALL_STATUSES),
                                           Call.lease_expires_at < now)  # not renewed since
                        .order_by(Call.id))
                if not self.db.is_sqlite:
                    stmt = stmt.with_for_update(skip_locked=True)
                calls = list(await s.scalars(stmt))
                context = await load_call_context(s, calls)  # noqa: F841 (held for the batch)
                settle = Settlement()
                with s.no_autoflush:
                    for call in calls:
                        status = statuses.get(call.id)
                        if status is None:
                            await finish_call(s, call, "failed", "dial_not_confirmed", now,
                                              settle)
                        elif status.state == "refused":
                            await finish_call(s, call, status.outcome or "failed",
                                              "carrier_rejected", status.ended_at or now,
                                              settle)
                        else:
                            await finish_call(s, call, status.outcome or "failed",
                                              f"carrier_{status.outcome}",
                                              status.ended_at or now, settle)
                await s.flush()
                await settle.apply(s, now)
            await s.commit()
        return len(stale)
