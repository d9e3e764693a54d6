"""The compliance engine as the dialer uses it: a team's settings read once, jurisdictions
and composed windows cached, one decision per candidate, one audit row per decision.

The dialer's claim (``dialer/engine.py``) is the hot path, so nothing here is done per
contact that can be done per key:

* a contact's :class:`~callfleet.compliance.jurisdiction.JurisdictionSet` is cached by the
  contact's address, phone and zone (an LRU of ``JSET_CACHE`` entries);
* a :class:`~callfleet.compliance.schedule.Schedule` is cached by everything it depends on —
  the jurisdiction set's codes and zones, the scope, the campaign window, the legal hours,
  the team's rules, blackouts and margin — and by the UTC day it starts on; it covers that
  day plus ``HORIZON_DAYS``, so each key is composed once a day per process;
* what is left per contact is a binary search, the caps (only for contacts that have one) and
  the decision itself.

The team's choices live in ``team.settings["compliance"]`` (``/api/compliance/settings``):
see :class:`TeamCompliance`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from callfleet import ids
from callfleet.calls.models import Call
from callfleet.compliance.caps import Cap, PastCall
from callfleet.compliance.decision import Consent, Decision, caps_for, evaluate
from callfleet.compliance.jurisdiction import JurisdictionSet, phone_facts, resolve
from callfleet.compliance.schedule import DEFAULT_MARGIN, Blackout, Schedule, Scope, compose
from callfleet.compliance.table import Rule, RuleTable, parse_rules, shipped_table
from callfleet.dialer import rules as dial_rules
from callfleet.teams.principal import TeamScope

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "Gate",
    "TeamCompliance",
    "audit_row",
    "cap_lock_key",
    "consent_of",
    "dnc_audit_row",
    "judge_single_call",
    "rules_from_json",
    "team_compliance",
    "with_ids",
]

#: Dial decisions are kept five years by default (TCPA limitation period; DNC records).
DEFAULT_RETENTION_DAYS = 5 * 366
HORIZON_DAYS = 15
JSET_CACHE = 100_000
SCHEDULE_CACHE = 4096

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(OrderedDict[K, V]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: K, value: V) -> V:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


@dataclass(frozen=True)
class TeamCompliance:
    """A team's compliance settings, validated (``team.settings["compliance"]``).

    * ``default_campaign_purpose``: a new campaign's purpose when it names none
      (``informational`` until the team changes it);
    * ``margin_seconds``: a call starts at least this long before a legal window closes
      (default 120);
    * ``frequency_cap_per_24h``: the team's own cap per called number, across its campaigns;
    * ``time_rules_for_all_purposes`` (default true): apply every window and holiday rule to
      informational calls too; turning it off is an owner's, logged, choice;
    * ``attestations``: what the team vouches for (``natural_voice_announcement``,
      ``established_business_relationship``); owner only, logged;
    * ``jurisdiction_mode``: ``strict`` (default) or ``address_verified``;
    * ``disabled_rules``: shipped rules an owner turned off (logged);
    * ``rules``: the team's own rules (same schema as the table; they can only narrow);
    * ``blackouts``: emergency blackouts (jurisdiction, start, end, citation);
    * ``retention_days``: how long dial decisions are kept (default five years).
    """

    default_campaign_purpose: str = "informational"
    margin: timedelta = DEFAULT_MARGIN
    team_cap: Cap | None = None
    time_rules_for_all_purposes: bool = True
    attestations: frozenset[str] = frozenset()
    jurisdiction_mode: str = "strict"
    disabled_rules: frozenset[str] = frozenset()
    extra_rules: tuple[Rule, ...] = ()
    blackouts: tuple[Blackout, ...] = ()
    retention_days: int = DEFAULT_RETENTION_DAYS


_TEAM_CACHE: _Lru[str, TeamCompliance] = _Lru(4096)


def _blackout(raw: dict[str, Any]) -> Blackout:
    return Blackout(id=str(raw["id"]), jurisdiction=str(raw["jurisdiction"]),
                    start=datetime.fromisoformat(raw["start"]).astimezone(UTC),
                    end=datetime.fromisoformat(raw["end"]).astimezone(UTC),
                    citation=str(raw.get("citation") or ""))


def rules_from_json(raw: Any) -> Any:
    """Team rules as stored (JSON): ISO date strings become dates for the table's parser."""
    if not isinstance(raw, list):
        return raw
    out = []
    for rule in raw:
        if isinstance(rule, dict):
            rule = dict(rule)
            for key in ("effective_from", "effective_to"):
                if isinstance(rule.get(key), str):
                    with contextlib.suppress(ValueError):
                        rule[key] = date.fromisoformat(rule[key])
        out.append(rule)
    return out


def team_compliance(settings: dict[str, Any] | None, table: RuleTable | None = None
                    ) -> TeamCompliance:
    """Parse ``settings["compliance"]`` (validated when written; cached by content)."""
    raw = (settings or {}).get("compliance") or {}
    if not raw:
        return TeamCompliance()
    key = json.dumps(raw, sort_keys=True, default=str)
    hit = _TEAM_CACHE.get(key)
    if hit is not None:
        return hit
    table = table or shipped_table()
    cap = raw.get("frequency_cap_per_24h")
    tc = TeamCompliance(
        default_campaign_purpose=raw.get("default_campaign_purpose", "informational"),
        margin=timedelta(seconds=int(raw.get("margin_seconds",
                                             DEFAULT_MARGIN.total_seconds()))),
        team_cap=Cap("team/frequency-cap", int(cap), timedelta(hours=24)) if cap else None,
        time_rules_for_all_purposes=bool(raw.get("time_rules_for_all_purposes", True)),
        attestations=frozenset(raw.get("attestations") or ()),
        jurisdiction_mode=raw.get("jurisdiction_mode", "strict"),
        disabled_rules=frozenset(raw.get("disabled_rules") or ()),
        extra_rules=parse_rules(rules_from_json(raw.get("rules") or []), table),
        blackouts=tuple(_blackout(b) for b in raw.get("blackouts") or ()),
        retention_days=int(raw.get("retention_days", DEFAULT_RETENTION_DAYS)),
    )
    return _TEAM_CACHE.put(key, tc)


def cap_lock_key(team_id: str, phone: str) -> int:
    """A signed 64-bit key for a PostgreSQL advisory lock on (team, called number)."""
    digest = hashlib.blake2b(f"{team_id}\x00{phone}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Gate:
    """Per-process caches in front of the pure engine (see the module docstring)."""

    def __init__(self, table: RuleTable | None = None) -> None:
        self.table = table or shipped_table()
        self._jsets: _Lru[tuple[Any, ...], JurisdictionSet] = _Lru(JSET_CACHE)
        self._schedules: _Lru[tuple[Any, ...], Schedule] = _Lru(SCHEDULE_CACHE)

    def scope(self, tc: TeamCompliance, purpose: str | None, consent_check: bool | None
              ) -> Scope:
        return Scope(purpose=purpose or "informational",
                     time_rules_for_all_purposes=tc.time_rules_for_all_purposes,
                     disabled_rules=tc.disabled_rules, attestations=tc.attestations,
                     consent_check=consent_check is not False)

    def jurisdictions(self, tc: TeamCompliance, *, state: str | None,
                      postal_code: str | None, country: str | None, phone: str | None,
                      contact_tz: str | None, fallback_zone: str) -> JurisdictionSet:
        # Keyed by what the number tells, not the number: contacts of one area code and zone
        # share one resolution.
        key = (state, postal_code, country, phone_facts(phone), contact_tz, fallback_zone,
               tc.jurisdiction_mode)
        hit = self._jsets.get(key)
        if hit is None:
            hit = self._jsets.put(key, resolve(
                self.table, state=state, postal_code=postal_code, country=country, phone=phone,
                contact_tz=contact_tz, fallback_zone=fallback_zone, mode=tc.jurisdiction_mode))
        return hit

    def schedule(self, tc: TeamCompliance, jset: JurisdictionSet, scope: Scope,
                 window: dial_rules.CallWindow | None, legal: dial_rules.LegalHours | None,
                 now: datetime) -> Schedule:
        day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        key = (jset.key, scope, window, legal, tc.margin, tc.blackouts, tc.extra_rules, day)
        hit = self._schedules.get(key)
        if hit is None:
            hit = self._schedules.put(key, compose(
                self.table, jset, scope, since=day, until=day + timedelta(days=HORIZON_DAYS),
                campaign_window=window, legal=legal, margin=tc.margin, blackouts=tc.blackouts,
                extra_rules=tc.extra_rules))
        return hit

    def caps(self, tc: TeamCompliance, jset: JurisdictionSet, scope: Scope,
             now: datetime) -> list[Cap]:
        caps = caps_for(self.table, jset, scope, now, tc.extra_rules)
        if tc.team_cap is not None:
            caps.append(tc.team_cap)
        return caps

    def decide(self, tc: TeamCompliance, jset: JurisdictionSet, scope: Scope,
               schedule: Schedule, now: datetime, *, consent: Consent,
               history: Sequence[PastCall]) -> Decision:
        return evaluate(self.table, jset, scope, schedule, now=now, consent=consent,
                        history=history,
                        team_caps=(tc.team_cap,) if tc.team_cap is not None else (),
                        extra_rules=tc.extra_rules)


_SHARED: list[Gate] = []


def shared_gate() -> Gate:
    """The process's gate for dials outside the dialer (POST /api/crm/calls)."""
    if not _SHARED:
        _SHARED.append(Gate())
    return _SHARED[0]


async def judge_single_call(session: AsyncSession, scope: TeamScope,
                            team_settings: dict[str, Any] | None, contact: Any | None,
                            to_number: str, legal: dial_rules.LegalHours, now: datetime
                            ) -> tuple[Decision, str]:
    """The compliance decision for one call placed now outside a campaign, with the team's
    default purpose: ``(decision, purpose)``."""
    gate = shared_gate()
    tc = team_compliance(team_settings, gate.table)
    scope_ = gate.scope(tc, tc.default_campaign_purpose, True)
    jset = gate.jurisdictions(
        tc, state=getattr(contact, "state", None),
        postal_code=getattr(contact, "postal_code", None),
        country=getattr(contact, "country", None), phone=to_number,
        contact_tz=getattr(contact, "timezone", None), fallback_zone="America/New_York")
    history: list[PastCall] = []
    caps = gate.caps(tc, jset, scope_, now)
    if caps:
        look_back = now - max(cap.per for cap in caps)
        rows = await session.execute(
            scope.select(Call.started_at, Call.answered_at)
            .where(Call.to_number == to_number, Call.started_at > look_back))
        history = [PastCall(at, completed=answered is not None) for at, answered in rows]
    decision = gate.decide(
        tc, jset, scope_, gate.schedule(tc, jset, scope_, None, legal, now), now,
        consent=consent_of(getattr(contact, "consent_kind", None),
                           getattr(contact, "consent_revoked_at", None)), history=history)
    return decision, scope_.purpose


def consent_of(kind: str | None, revoked_at: datetime | None) -> Consent:
    return Consent(kind=kind if kind in ("prior_express_written", "prior_express") else "none",
                   revoked=revoked_at is not None)


def audit_row(d: Decision, *, team_id: str, campaign_id: str | None,
              enrollment_id: str | None, contact_id: str | None, phone: str | None,
              purpose: str, call_id: str | None = None) -> dict[str, Any]:
    """The ``dial_decisions`` row of a decision (docs/compliance.md, "Reading a decision");
    its ``id`` is set by :func:`with_ids` (ids for a batch in one reservation)."""
    return {
        "id": None, "team_id": team_id, "campaign_id": campaign_id,
        "enrollment_id": enrollment_id, "contact_id": contact_id, "call_id": call_id,
        "phone": phone, "evaluated_at": d.evaluated_at, "outcome": d.outcome,
        "reason": d.reason, "rules_fired": list(d.rules_fired),
        "table_version": d.table_version,
        "jurisdictions": [{"code": f.code, "source": f.source, "detail": f.detail}
                          for f in d.jurisdictions],
        "local_times": [{"zone": t.zone, "source": t.source, "local": t.local,
                         "weekday": t.weekday} for t in d.local_times],
        "next_allowed_at": d.next_allowed_at if d.outcome == "defer" else None,
        "detail": {"purpose": purpose, "tableSha256": d.table_sha256,
                   "rulesApplied": list(d.rules_applied),
                   "caps": [c.as_dict() for c in d.caps], "waived": list(d.waived),
                   "marginSeconds": d.margin_seconds, "defaulted": d.defaulted},
    }


def with_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give a batch of audit rows their ids (one ULID reservation for the batch)."""
    for row, rid in zip(rows, ids.new_ids("dd", len(rows)), strict=True):
        row["id"] = rid
    return rows


def dnc_audit_row(reason: str, at: datetime, *, team_id: str, campaign_id: str,
                  enrollment_id: str, contact_id: str, phone: str | None, purpose: str,
                  table: RuleTable) -> dict[str, Any]:
    """The row of a refusal the dialer makes before any rule is looked at (no phone, the
    contact's do-not-call flag, lead status, the team's do-not-call list)."""
    return {
        "id": None, "team_id": team_id, "campaign_id": campaign_id,
        "enrollment_id": enrollment_id, "contact_id": contact_id, "call_id": None,
        "phone": phone, "evaluated_at": at, "outcome": "skip", "reason": reason,
        "rules_fired": [], "table_version": table.version, "jurisdictions": [],
        "local_times": [], "next_allowed_at": None,
        "detail": {"purpose": purpose, "tableSha256": table.sha256},
    }
