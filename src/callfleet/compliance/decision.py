"""One dial decision, explained (pure): may this contact be called now, and if not, why and
when.

``evaluate`` combines a composed :class:`~callfleet.compliance.schedule.Schedule`, the
requirements (consent, a live announcement, an established business relationship) and the
frequency caps into a :class:`Decision`: the outcome (``allow``, ``defer`` until
``next_allowed_at``, or ``skip`` for refusals only a change of data lifts), one reason code,
the rules that fired with the rule-table version and digest, the jurisdictions with their
evidence, the local time in every zone that was evaluated, and the cap counts. That is what
the audit stores and what a person reads to understand why a contact is waiting.

When several things refuse a call, the reason is the most specific legal one, in the order of
:data:`REASONS`; ``rules_fired`` lists every rule that refused it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from callfleet.compliance.caps import Cap, CapState, PastCall, check_caps
from callfleet.compliance.jurisdiction import Found, JurisdictionSet
from callfleet.compliance.schedule import Schedule, Scope
from callfleet.compliance.table import Rule, RuleTable
from callfleet.dialer import rules as dial_rules

__all__ = [
    "CONSENT_KINDS",
    "PERMANENT_REASONS",
    "REASONS",
    "Consent",
    "Decision",
    "LocalTime",
    "caps_for",
    "describe",
    "describe_reason",
    "evaluate",
]

#: Reason codes, most specific first: when several apply, the first one is recorded.
REASONS: tuple[str, ...] = (
    "consent_revoked",
    "consent_missing",
    "state_requirement_unmet",
    "blackout_event",
    "state_holiday",
    "state_day_closed",
    "state_hours",
    "federal_hours",
    "team_legal_hours",
    "team_rule",
    "frequency_cap",
    "outside_window",
    "no_window",
)
#: Refusals no amount of waiting lifts: the enrollment is skipped.
PERMANENT_REASONS: frozenset[str] = frozenset(
    {"consent_revoked", "consent_missing", "state_requirement_unmet"})
CONSENT_KINDS: tuple[str, ...] = ("prior_express_written", "prior_express", "none")
_SATISFIES = {
    "prior_express_written_consent": frozenset({"prior_express_written"}),
    "prior_express_consent": frozenset({"prior_express_written", "prior_express"}),
}
_CONSENT_REQUIREMENTS = frozenset(_SATISFIES)

_DESCRIPTIONS = {
    "consent_revoked": "consent was revoked",
    "consent_missing": "no {consent} on record",
    "state_requirement_unmet": "{where} requirement not met",
    "blackout_event": "{where} emergency blackout",
    "state_holiday": "{where} holiday",
    "state_day_closed": "{where} closed day",
    "state_hours": "{where} hours",
    "federal_hours": "federal calling hours",
    "team_legal_hours": "the team's legal hours",
    "team_rule": "a team rule",
    "frequency_cap": "{where} call limit",
    "outside_window": "the campaign window",
    "no_window": "no allowed time within two weeks",
}


@dataclass(frozen=True)
class Consent:
    """The contact's strongest current consent: its kind and whether it was revoked."""

    kind: str = "none"
    revoked: bool = False

    def __post_init__(self) -> None:
        if self.kind not in CONSENT_KINDS:
            raise ValueError(f"unknown consent kind {self.kind!r}")


@dataclass(frozen=True)
class LocalTime:
    zone: str
    source: str
    local: str  # ISO 8601 with offset
    weekday: str


@dataclass(frozen=True)
class Decision:
    outcome: str  # allow | defer | skip
    reason: str | None
    rules_fired: tuple[str, ...]
    rules_applied: tuple[str, ...]
    table_version: str
    table_sha256: str
    jurisdictions: tuple[Found, ...]
    local_times: tuple[LocalTime, ...]
    evaluated_at: datetime
    next_allowed_at: datetime | None
    margin_seconds: int
    caps: tuple[CapState, ...] = ()
    waived: tuple[str, ...] = ()
    defaulted: bool = False

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    def as_dict(self) -> dict[str, object]:
        """The decision as JSON-ready values (what the audit table stores)."""
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "rules_fired": list(self.rules_fired),
            "rules_applied": list(self.rules_applied),
            "table_version": self.table_version,
            "table_sha256": self.table_sha256,
            "jurisdictions": [{"code": f.code, "source": f.source, "detail": f.detail}
                              for f in self.jurisdictions],
            "local_times": [{"zone": t.zone, "source": t.source, "local": t.local,
                             "weekday": t.weekday} for t in self.local_times],
            "evaluated_at": self.evaluated_at.isoformat(),
            "next_allowed_at": self.next_allowed_at.isoformat() if self.next_allowed_at
            else None,
            "margin_seconds": self.margin_seconds,
            "caps": [c.as_dict() for c in self.caps],
            "waived": list(self.waived),
            "defaulted": self.defaulted,
        }


def _local_times(jset: JurisdictionSet, now: datetime) -> tuple[LocalTime, ...]:
    return _local_times_of(jset.zones, now)


@lru_cache(maxsize=1024)
def _local_times_of(zones: tuple[Any, ...], now: datetime) -> tuple[LocalTime, ...]:
    """Cached: the dialer judges a whole batch at one ``now``, most contacts in a few zones."""
    out = []
    for z in zones:
        local = now.astimezone(dial_rules.zone(z.zone))
        out.append(LocalTime(z.zone, z.source, local.isoformat(),
                             dial_rules.WEEKDAYS[local.weekday()]))
    return tuple(out)


def _today(jset: JurisdictionSet, now: datetime) -> date:
    zones = jset.zone_names
    return _local_date(zones[0] if zones else "UTC", now)


@lru_cache(maxsize=1024)
def _local_date(zone: str, now: datetime) -> date:
    return now.astimezone(dial_rules.zone(zone)).date()


def _rules(table: RuleTable, jset: JurisdictionSet, kind: str, scope: Scope, day: date,
           extra_rules: Sequence[Rule]) -> tuple[Rule, ...]:
    return _scoped_rules(table, jset.codes, kind, scope, day, tuple(extra_rules))


@lru_cache(maxsize=4096)
def _scoped_rules(table: RuleTable, codes: frozenset[str], kind: str, scope: Scope, day: date,
                  extra_rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    candidates = [r for code in sorted(codes) for r in table.rules_for(code)]
    candidates += [r for r in extra_rules if r.jurisdiction in codes]
    return tuple(r for r in candidates if r.kind == kind and r.effective_on(day)
                 and scope.applies(r, time_rule=False))


def caps_for(table: RuleTable, jset: JurisdictionSet, scope: Scope, now: datetime,
             extra_rules: Sequence[Rule] = ()) -> list[Cap]:
    """The frequency caps that apply to a call of ``scope`` to this contact at ``now``."""
    return [Cap(r.id, r.max_calls or 1, timedelta(hours=r.per_hours or 24),
                r.counts or "attempts")
            for r in _rules(table, jset, "frequency_cap", scope, _today(jset, now),
                            extra_rules)]


def evaluate(
    table: RuleTable,
    jset: JurisdictionSet,
    scope: Scope,
    schedule: Schedule,
    *,
    now: datetime,
    consent: Consent = Consent(),
    history: Sequence[PastCall] = (),
    team_caps: Sequence[Cap] = (),
    attestations: frozenset[str] = frozenset(),
    extra_rules: Sequence[Rule] = (),
) -> Decision:
    """Judge a call to the contact at ``now`` (see the module docstring).

    ``schedule`` must cover ``now`` (compose it for the contact's jurisdiction set, zones and
    ``scope``). ``attestations`` are the contact's own (e.g. an established business
    relationship), added to the scope's team-wide ones.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    if not schedule.covers(now):
        raise ValueError("the schedule does not cover now; compose one that does")
    day = _today(jset, now)
    fired: list[tuple[str, str]] = []  # (reason, rule id)
    waived: list[str] = []
    requirements = _rules(table, jset, "requirement", scope, day, extra_rules)
    vouched = scope.attestations | attestations
    for r in requirements:
        assert r.requires is not None
        if r.requires in _CONSENT_REQUIREMENTS:
            if not scope.consent_check:
                waived.append(r.id)
            elif consent.revoked:
                fired.append(("consent_revoked", r.id))
            elif consent.kind not in _SATISFIES[r.requires]:
                fired.append(("consent_missing", r.id))
        elif r.requires not in vouched:
            fired.append(("state_requirement_unmet", r.id))
    applied = [*schedule.rule_ids, *(r.id for r in requirements)]
    caps = [*caps_for(table, jset, scope, now, extra_rules), *team_caps]
    applied += [c.rule_id for c in caps]
    cap_states = check_caps(caps, history, now)
    common = {
        "rules_applied": tuple(dict.fromkeys(applied)), "table_version": table.version,
        "table_sha256": table.sha256, "jurisdictions": jset.jurisdictions,
        "local_times": _local_times(jset, now), "evaluated_at": now,
        "margin_seconds": int(schedule.margin.total_seconds()), "caps": tuple(cap_states),
        "waived": tuple(waived), "defaulted": jset.defaulted,
    }
    if fired:
        fired.sort(key=lambda f: REASONS.index(f[0]))
        return Decision(outcome="skip", reason=fired[0][0],
                        rules_fired=tuple(dict.fromkeys(rid for _, rid in fired)),
                        next_allowed_at=None, **common)  # type: ignore[arg-type]
    release = max((s.release_at for s in cap_states if s.release_at is not None),
                  default=None)
    if release is None and schedule.allowed_at(now):
        return Decision(outcome="allow", reason=None, rules_fired=(), next_allowed_at=now,
                        **common)  # type: ignore[arg-type]
    for c in schedule.refusing(now):
        fired.append((c.reason_at(now), c.key))
    for s in cap_states:
        if s.full:
            fired.append(("frequency_cap", s.rule_id))
    fired.sort(key=lambda f: REASONS.index(f[0]))
    next_at = schedule.next_allowed(max(now, release or now))
    reason = fired[0][0] if fired else "no_window"
    return Decision(outcome="defer", reason=reason,
                    rules_fired=tuple(dict.fromkeys(k for _, k in fired)),
                    next_allowed_at=next_at, **common)  # type: ignore[arg-type]


def describe_reason(reason: str, rule_id: str | None, table: RuleTable) -> str:
    """``"waiting for Florida hours"`` from a reason code and the rule that fired first."""
    template = _DESCRIPTIONS.get(reason, reason.replace("_", " "))
    where, consent = "a state", "consent"
    rule = table.rule(rule_id) if rule_id else None
    if rule_id and rule_id.startswith("team/"):
        where = "the team's"
    if rule is not None:
        j = table.jurisdictions.get(rule.jurisdiction)
        if j is not None:
            where = "federal" if j.code == "US" else j.name
        if rule.requires in _SATISFIES:
            consent = rule.requires.replace("_", " ")
    text = template.format(where=where, consent=consent)
    return f"skipped: {text}" if reason in PERMANENT_REASONS else f"waiting for {text}"


def describe(decision: Decision, table: RuleTable) -> str:
    """A short human reading: ``"waiting for Florida hours"``, ``"skipped: no prior express
    written consent on record"``."""
    if decision.outcome == "allow" or decision.reason is None:
        return "may be called now"
    rule = next((r for r in decision.rules_fired
                 if table.rule(r) is not None or r.startswith("team/")), None)
    return describe_reason(decision.reason, rule, table)
