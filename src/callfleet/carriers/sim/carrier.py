"""The simulated carrier: a telephony network inside callfleet (SPEC 6).

Numbers for sale are in reserved fictional ranges (NANP 555-01XX, Ofcom's 020 7946 0XXX
drama range). Any valid destination can be dialed; what happens is a deterministic function
of the number (and the attempt), or a profile set per number (``SimProfile``). Each call's
timeline is stored in ``sim_calls``; ``pump`` delivers due events to callfleet through
``dialer.outcomes.CallEvents.handle_many`` — the same entry point a real carrier's callbacks use.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from callfleet import ids
from callfleet.carriers.base import (
    AvailableNumber,
    CarrierCallStatus,
    CarrierEvent,
    CarrierRejected,
)
from callfleet.carriers.sim.models import SimCall, SimProfile
from callfleet.clock import Clock
from callfleet.db.base import UTCDateTime
from callfleet.db.session import Database
from callfleet.numbers.models import PhoneNumber
from callfleet.wakeup import notify

# "screened": answered by a call screener first (audio mode; else the same as "answer").
BEHAVIOURS = ("answer", "no_answer", "busy", "voicemail", "decline", "failed", "invalid",
              "screened")
PERSONAS = (
    "interested", "busy_now", "callback", "gives_email", "asks_price", "refuses", "opt_out",
    "gives_info",
)
MAX_CALL_SECONDS = 900.0
FICTIONAL = {
    # country: (number template, area codes, price)
    "US": ("+1{area}55501{n:02d}", ("212", "415", "312", "617", "202", "305", "512", "206"),
           1.15),
    "CA": ("+1{area}55501{n:02d}", ("416", "604", "514", "647"), 1.30),
    "GB": ("+44{area}460{n:03d}", ("2079",), 1.00),
}
TOLL_FREE = {"US": ("+1{area}55501{n:02d}", ("800", "888"), 2.15)}

DeliverMany = Callable[[list[CarrierEvent]], Awaitable[None]]


def parse_mix(text: str) -> list[tuple[str, float]]:
    mix: list[tuple[str, float]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in BEHAVIOURS or name == "invalid":
            raise ValueError(f"unknown simulated behaviour {name!r}")
        mix.append((name, float(weight)))
    if not mix or sum(w for _, w in mix) <= 0:
        raise ValueError("the simulated mix needs at least one positive weight")
    return mix


def _unit(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class SimCarrier:
    name = "sim"

    def __init__(
        self, db: Database, clock: Clock, *, mix: str, invalid_percent: float = 2.0,
        instant: bool = False, audio: bool = False,
        on_audio_answer: Callable[[CarrierEvent], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.mix = parse_mix(mix)
        self.invalid_percent = invalid_percent
        self.instant = instant
        # Audio mode: an answered callee talks over the media stream. ``on_audio_answer``
        # (set by the app: voice.simcallee) opens it; without it the mode is off.
        self.audio = audio
        self.on_audio_answer = on_audio_answer
        self._audio_calls: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ numbers

    async def search_numbers(
        self, country_code: str, area_code: str | None, number_type: str, limit: int
    ) -> list[AvailableNumber]:
        table = TOLL_FREE if number_type == "toll-free" else FICTIONAL
        spec = table.get(country_code.upper())
        if spec is None:
            return []
        template, areas, price = spec
        if area_code:
            areas = tuple(a for a in areas if a == area_code) or (
                (area_code,) if country_code.upper() in ("US", "CA") and len(area_code) == 3
                and area_code.isdigit() and area_code[0] not in "01" else ()
            )
        async with self.db.session(write=False) as s:
            owned = set(await s.scalars(select(PhoneNumber.phone_number)))
        out: list[AvailableNumber] = []
        width = 100 if country_code.upper() in ("US", "CA") else 1000
        for area in areas:
            for n in range(width):
                number = template.format(area=area, n=n)
                if number in owned:
                    continue
                out.append(
                    AvailableNumber(number, price, 0.0, ("voice", "sms"), country_code.upper(),
                                    number_type)
                )
                if len(out) >= limit:
                    return out
        return out

    async def purchase_number(self, phone_number: str) -> str:
        return f"sim-pn-{phone_number.lstrip('+')}"

    async def release_number(self, provider_ref: str | None) -> None:
        return None

    # ------------------------------------------------------------ calls

    async def set_profile(
        self, phone_number: str, behaviours: list[str], persona: str | None = None,
        ring_seconds: int | None = None, audio: bool | None = None,
    ) -> None:
        """Fix what a number does (one behaviour per attempt; the last one repeats)."""
        for b in behaviours:
            if b not in BEHAVIOURS:
                raise ValueError(f"unknown simulated behaviour {b!r}")
        if persona is not None and persona not in PERSONAS:
            raise ValueError(f"unknown persona {persona!r}")
        async with self.db.session() as s:
            row = await s.get(SimProfile, phone_number)
            if row is None:
                s.add(SimProfile(phone_number=phone_number, behaviours=behaviours,
                                 persona=persona, ring_seconds=ring_seconds, audio=audio))
            else:
                row.behaviours, row.persona, row.ring_seconds = behaviours, persona, ring_seconds
                row.audio = audio
            await s.commit()

    def _pick(self, number: str, attempt: int) -> str:
        if _unit("invalid", number) * 100 < self.invalid_percent:
            return "invalid"
        total = sum(w for _, w in self.mix)
        x = _unit("behaviour", number, attempt) * total
        for name, weight in self.mix:
            if x < weight:
                return name
            x -= weight
        return self.mix[-1][0]

    def _behaviour(self, number: str, attempt: int, profile: SimProfile | None
                   ) -> tuple[str, str, float]:
        persona = PERSONAS[int(_unit("persona", number) * len(PERSONAS))]
        ring = 6.0 * (1 + int(_unit("rings", number) * 4))
        if profile is not None and profile.behaviours:
            behaviour = profile.behaviours[min(attempt, len(profile.behaviours) - 1)]
            persona = profile.persona or persona
            ring = float(profile.ring_seconds) if profile.ring_seconds is not None else ring
        else:
            behaviour = self._pick(number, attempt)
        return behaviour, persona, ring

    def _timeline(self, behaviour: str, ring: float, start: datetime) -> list[list[str]]:
        def at(seconds: float) -> str:
            return (start + timedelta(seconds=0 if self.instant else seconds)).isoformat()

        if behaviour in ("answer", "screened"):
            return [["ringing", at(0.5)], ["answered", at(ring)],
                    ["ended:completed", at(ring + MAX_CALL_SECONDS)]]
        if behaviour == "voicemail":
            return [["ringing", at(0.5)], ["answered", at(ring)],
                    ["machine_detected", at(ring + 3)],
                    ["ended:completed", at(ring + 3 + MAX_CALL_SECONDS)]]
        if behaviour == "no_answer":
            return [["ringing", at(0.5)], ["ended:no_answer", at(30)]]
        if behaviour == "busy":
            return [["ended:busy", at(2)]]
        if behaviour == "decline":
            return [["ringing", at(0.5)], ["ended:declined", at(max(1.0, ring / 2))]]
        return [["ended:failed", at(1)]]

    async def place_call(self, call_ref: str, from_number: str, to_number: str) -> str:
        result = (await self.place_calls([(call_ref, from_number, to_number)]))[0]
        if isinstance(result, CarrierRejected):
            raise result
        return result

    async def place_calls(
        self, dials: list[tuple[str, str, str]]
    ) -> list[str | CarrierRejected]:
        """Dial many calls in one network transaction; per dial, the carrier call id or
        the rejection. A call reference the network has seen before is refused."""
        now = self.clock.now()
        numbers = sorted({to for _, _, to in dials})
        t = SimCall.__table__
        async with self.db.session() as s:
            seen = {n: int(c) for n, c in await s.execute(
                select(t.c.to_number, func.count()).where(t.c.to_number.in_(numbers))
                .group_by(t.c.to_number))}
            profiles = {p.phone_number: p for p in await s.scalars(
                select(SimProfile).where(SimProfile.phone_number.in_(numbers)))}
            known = set(await s.scalars(select(t.c.call_ref).where(
                t.c.call_ref.in_([ref for ref, _, _ in dials]))))
            out: list[str | CarrierRejected] = []
            rows: list[dict[str, Any]] = []
            for ref, from_number, to_number in dials:
                if ref in known:
                    out.append(CarrierRejected(
                        "failed", "the network already has a call for this attempt"))
                    continue
                known.add(ref)
                attempt = seen.get(to_number, 0)
                seen[to_number] = attempt + 1
                profile = profiles.get(to_number)
                behaviour, persona, ring = self._behaviour(to_number, attempt, profile)
                audio = (profile.audio if profile is not None and profile.audio is not None
                         else self.audio) and self.on_audio_answer is not None
                row: dict[str, Any] = {
                    "id": f"sim_{ids.new_id('call')[5:]}", "call_ref": ref,
                    "from_number": from_number, "to_number": to_number,
                    "behaviour": behaviour, "persona": persona, "state": "ringing",
                    "outcome": None, "created_at": now, "answered_at": None, "ended_at": None,
                    "timeline": [], "events_sent": 0, "next_event_at": None,
                    "hangup_at": None, "claimed_until": None,
                    "data": {"audio": True} if audio else {},
                }
                if behaviour == "invalid":
                    row.update(state="refused", outcome="invalid_number", ended_at=now)
                    out.append(CarrierRejected("invalid_number", "the number is not in service"))
                else:
                    row["timeline"] = self._timeline(behaviour, ring, now)
                    row["next_event_at"] = datetime.fromisoformat(row["timeline"][0][1])
                    out.append(row["id"])
                rows.append(row)
            try:
                if rows:
                    await s.execute(insert(t), rows)
                    notify(s, "dialer")  # the network has events to deliver
                await s.commit()
            except IntegrityError:
                # A reference fenced by reconciliation meanwhile: fall back to one by one.
                await s.rollback()
                if len(dials) == 1:
                    return [CarrierRejected(
                        "failed", "the network already has a call for this attempt")]
                results: list[str | CarrierRejected] = []
                for dial in dials:
                    results.extend(await self.place_calls([dial]))
                return results
        return out

    async def hangup(self, carrier_call_id: str, after_seconds: float = 0.0) -> None:
        await self.hangup_many([(carrier_call_id, after_seconds)])

    async def hangup_many(self, hangups: list[tuple[str, float]]) -> None:
        """The far end hangs up after the given seconds (the final "ended" moves earlier)."""
        now = self.clock.now()
        t = SimCall.__table__
        async with self.db.session() as s:
            rows = {r.id: r for r in await s.execute(
                select(t.c.id, t.c.state, t.c.timeline, t.c.events_sent, t.c.next_event_at)
                .where(t.c.id.in_(sorted({h[0] for h in hangups}))))}
            changes: dict[str, dict[str, Any]] = {}
            for carrier_call_id, after in hangups:
                row = rows.get(carrier_call_id)
                if row is None or row.state in ("ended", "refused"):
                    continue
                at = now + timedelta(seconds=0 if self.instant else after)
                nxt = row.next_event_at
                if (row.events_sent == len(row.timeline) - 1 and nxt is not None
                        and nxt > at):
                    nxt = at
                changes[carrier_call_id] = {"sid": carrier_call_id, "hangup": at, "next": nxt}
            if changes:
                await s.execute(
                    update(t).where(t.c.id == bindparam("sid"))
                    .values(hangup_at=bindparam("hangup", type_=UTCDateTime),
                            next_event_at=bindparam("next", type_=UTCDateTime)),
                    list(changes.values()))
                notify(s, "dialer")  # a call's end may have moved earlier
            await s.commit()

    async def call_status(self, call_ref: str) -> CarrierCallStatus | None:
        return (await self.call_statuses([call_ref]))[call_ref]

    async def call_statuses(self, call_refs: list[str]) -> dict[str, CarrierCallStatus | None]:
        """The network's record of each call reference; ``None`` for a dial it never got,
        which it then fences (a late dial for that reference is refused)."""
        t = SimCall.__table__
        cols = (t.c.id, t.c.call_ref, t.c.state, t.c.outcome, t.c.answered_at, t.c.ended_at,
                t.c.behaviour)
        refs = sorted(set(call_refs))
        out: dict[str, CarrierCallStatus | None] = {}
        async with self.db.session() as s:
            found = {r.call_ref: r for r in await s.execute(
                select(*cols).where(t.c.call_ref.in_(refs)))}
            missing = [ref for ref in refs if ref not in found]
            fences: dict[str, str] = {}
            if missing:
                now = self.clock.now()
                fences = {ref: f"sim_{ids.new_id('call')[5:]}" for ref in missing}
                insert_ = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
                await s.execute(
                    insert_(t).values([
                        {"id": fences[ref], "call_ref": ref, "from_number": "", "to_number": "",
                         "behaviour": "fenced", "state": "refused", "created_at": now,
                         "timeline": [], "events_sent": 0, "data": {}}
                        for ref in missing])
                    .on_conflict_do_nothing(index_elements=["call_ref"]))
                await s.commit()
                # A dial that arrived meanwhile won the race: report it instead.
                found.update({r.call_ref: r for r in await s.execute(
                    select(*cols).where(t.c.call_ref.in_(missing)))})
        for ref in refs:
            row = found.get(ref)
            if row is None or fences.get(ref) == row.id:
                out[ref] = None
            else:
                out[ref] = CarrierCallStatus(row.id, row.state, row.outcome, row.answered_at,
                                             row.ended_at)
        return out

    # ------------------------------------------------------------ the network

    async def next_event_at(self) -> datetime | None:
        """When the network next has an event to deliver (for the dialer's idle waits)."""
        async with self.db.session(write=False) as s:
            return await s.scalar(select(func.min(SimCall.next_event_at)))

    async def pump(self, deliver: DeliverMany, limit: int = 500,
                   claim_seconds: float = 10.0) -> int:
        """Deliver every due event (at least once; callfleet's handler is idempotent).

        Claimed calls are locked for ``claim_seconds`` real seconds; every event of a call
        that is due now is delivered in one batch, in order, then the calls advance."""
        now = self.clock.now()
        until = now + self.clock.sim_delta(claim_seconds)
        async with self.db.session(write=False) as s:
            if await s.scalar(select(SimCall.id).where(SimCall.next_event_at <= now)
                              .limit(1)) is None:
                return 0  # idle passes take no write lock
        t = SimCall.__table__
        async with self.db.session() as s:
            due = (
                select(t.c.id)
                .where(t.c.next_event_at <= now)
                .where(or_(t.c.claimed_until.is_(None), t.c.claimed_until < now))
                .order_by(t.c.next_event_at)
                .limit(limit)
            )
            if not self.db.is_sqlite:
                due = due.with_for_update(skip_locked=True)
            rows = list(await s.execute(
                update(t).where(t.c.id.in_(due.scalar_subquery()))
                .values(claimed_until=until)
                .returning(t.c.id, t.c.call_ref, t.c.behaviour, t.c.persona, t.c.state,
                           t.c.answered_at, t.c.ended_at, t.c.outcome, t.c.timeline,
                           t.c.events_sent, t.c.next_event_at, t.c.hangup_at, t.c.data)))
            await s.commit()
        if not rows:
            return 0
        plan: dict[str, list[CarrierEvent]] = {}
        events: list[CarrierEvent] = []
        for row in rows:
            due_events = self._due_events(row, now)
            plan[row.id] = due_events
            events.extend(due_events)
        events.sort(key=lambda e: e.at)
        await deliver(events)
        await self._advance(rows, plan)
        if self.on_audio_answer is not None:
            for event in events:
                if event.type == "answered" and event.data.get("audio"):
                    # The callee picks up and opens the media stream; it runs for the whole
                    # call, so it is not awaited here.
                    task = asyncio.create_task(self.on_audio_answer(event))
                    self._audio_calls.add(task)
                    task.add_done_callback(self._audio_calls.discard)
        return len(events)

    def _due_events(self, row: Any, now: datetime) -> list[CarrierEvent]:
        out: list[CarrierEvent] = []
        step = row.events_sent
        at = row.next_event_at
        while step < len(row.timeline) and at is not None and at <= now:
            kind, _ = row.timeline[step]
            event_type, _, reason = kind.partition(":")
            data: dict[str, Any] = {"persona": row.persona, "behaviour": row.behaviour}
            if reason:
                data["reason"] = reason
            if event_type == "answered":
                data["answered_by"] = "machine" if row.behaviour == "voicemail" else "human"
                if (row.data or {}).get("audio"):
                    data["audio"] = True
            out.append(CarrierEvent("sim", row.id, row.call_ref, event_type, at, data))
            step += 1
            at = self._event_time(row.timeline, row.hangup_at, step, at)
        return out

    @staticmethod
    def _event_time(timeline: list[list[str]], hangup_at: datetime | None, step: int,
                    previous: datetime) -> datetime | None:
        if step >= len(timeline):
            return None
        nxt = datetime.fromisoformat(timeline[step][1])
        if step == len(timeline) - 1 and hangup_at is not None:
            nxt = min(nxt, hangup_at)
        return max(nxt, previous)

    async def _advance(self, claimed: list[Any], plan: dict[str, list[CarrierEvent]]) -> None:
        """Move the claimed calls' cursors past the delivered events and release the claim
        (one executemany). ``hangup_at`` is re-read: the delivery may have just set it."""
        t = SimCall.__table__
        async with self.db.session() as s:
            hangup = dict(list(await s.execute(
                select(t.c.id, t.c.hangup_at).where(t.c.id.in_([r.id for r in claimed])))))
            params: list[dict[str, Any]] = []
            idle: list[str] = []
            for row in claimed:
                delivered = plan.get(row.id)
                if not delivered:
                    idle.append(row.id)
                    continue
                state, answered_at, ended_at, outcome = (row.state, row.answered_at,
                                                         row.ended_at, row.outcome)
                sent = row.events_sent + len(delivered)
                for event in delivered:
                    if event.type == "answered":
                        state, answered_at = "answered", event.at
                    elif event.type == "ended":
                        state, ended_at = "ended", event.at
                        outcome = event.data.get("reason")
                nxt = (None if state == "ended" else self._event_time(
                    row.timeline, hangup.get(row.id), sent, delivered[-1].at))
                params.append({"sid": row.id, "state": state, "answered": answered_at,
                               "ended": ended_at, "outcome": outcome, "sent": sent,
                               "next": nxt})
            if params:
                await s.execute(
                    update(t).where(t.c.id == bindparam("sid"))
                    .values(state=bindparam("state"),
                            answered_at=bindparam("answered", type_=UTCDateTime),
                            ended_at=bindparam("ended", type_=UTCDateTime),
                            outcome=bindparam("outcome"), events_sent=bindparam("sent"),
                            next_event_at=bindparam("next", type_=UTCDateTime),
                            claimed_until=None),
                    params)
            if idle:
                await s.execute(update(t).where(t.c.id.in_(idle)).values(claimed_until=None))
            await s.commit()
