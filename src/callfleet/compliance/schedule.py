"""When may a contact be called: every time rule composed into UTC intervals (pure).

``compose`` turns the campaign window, the team's legal hours and every applicable rule of
every jurisdiction of a contact — in every plausible time zone — into one sorted list of UTC
intervals over ``[since, until)``:

    allowed = campaign window
            ∩ team legal hours, in every zone
            ∩ every window rule of every jurisdiction, in every zone (and its also_in_zone)
            − every holiday of those jurisdictions, in every zone
            − every blackout event of those jurisdictions

Every constraint except the campaign window is first shrunk by the safety ``margin``: a call
may start at ``t`` only when the constraint holds for all of ``[t, t + margin]``, so the ring
and the first words never fall after a legal window closes. The campaign window keeps today's
meaning (a call may start up to its end). Shrinking commutes with intersection, so each
:class:`Constraint` carries its own shrunk set and :meth:`Schedule.refusing` names exactly the
constraints that refuse an instant.

A rule with effective dates applies on the local days it is in force; a day outside them is
unconstrained by that rule. Local days become instants with ``dialer.rules.local_instant`` and
call windows with ``dialer.rules.window_spans``: one definition of "inside" for the dialer and
the compliance engine, including on the nights the clocks change.

A :class:`Schedule` depends only on the jurisdiction set, the zones, the scope, the window,
the legal hours, the margin, the blackouts and the range, so the dialer composes it once per
such key and answers each contact with a binary search.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from callfleet.compliance import intervals as iv
from callfleet.compliance.holidays import blocked_dates
from callfleet.compliance.jurisdiction import JurisdictionSet
from callfleet.compliance.table import Rule, RuleTable
from callfleet.dialer import rules as dial_rules

__all__ = [
    "DEFAULT_MARGIN",
    "TIME_KINDS",
    "Blackout",
    "Constraint",
    "Schedule",
    "Scope",
    "compose",
]

#: Default safety margin before a legal window closes: covers ring time and the greeting.
DEFAULT_MARGIN = timedelta(seconds=120)
#: Rule kinds that shape *when* a call may start.
TIME_KINDS: frozenset[str] = frozenset({"window", "holidays"})
_MIDNIGHT = time(0, 0)


@dataclass(frozen=True)
class Scope:
    """What kind of call is being judged, and the team's choices that change which rules apply.

    ``time_rules_for_all_purposes`` (the default) applies every window and holiday rule to
    informational calls too, whatever its ``purposes`` say: a mislabelled campaign is the
    likeliest mistake, and an hour of lost calling is cheaper than a fine per call. Caps and
    requirements follow ``purposes`` exactly. ``disabled_rules``: shipped rules an owner turned
    off (logged where that is decided). ``attestations``: what the team vouches for
    (``natural_voice_announcement``, ``established_business_relationship``).
    ``consent_check``: ``False`` when an owner turned off the consent requirements.
    """

    purpose: str = "informational"
    technology: str = "artificial_voice"
    time_rules_for_all_purposes: bool = True
    disabled_rules: frozenset[str] = frozenset()
    attestations: frozenset[str] = frozenset()
    consent_check: bool = True

    def applies(self, rule: Rule, *, time_rule: bool) -> bool:
        if rule.id in self.disabled_rules:
            return False
        if "any" not in rule.technologies and self.technology not in rule.technologies:
            return False
        return (time_rule and self.time_rules_for_all_purposes) or self.purpose in rule.purposes


@dataclass(frozen=True)
class Blackout:
    """An operator-entered ban on calls into a jurisdiction (a declared emergency)."""

    id: str
    jurisdiction: str
    start: datetime
    end: datetime
    citation: str


@dataclass(frozen=True)
class Constraint:
    """One condition of the composition and the instants it allows (already shrunk).

    ``key`` is the rule id, ``team/legal-hours``, ``campaign/window`` or the blackout's id.
    """

    key: str
    kind: str  # window | holidays | legal | campaign | blackout
    zone: str | None
    allowed: tuple[iv.Interval, ...]
    rule: Rule | None = None

    def reason_at(self, t: datetime) -> str:
        """The reason code this constraint gives for refusing ``t``."""
        if self.kind == "campaign":
            return "outside_window"
        if self.kind == "legal":
            return "team_legal_hours"
        if self.kind == "blackout":
            return "blackout_event"
        assert self.rule is not None
        if self.rule.team:
            return "team_rule"
        if self.kind == "holidays":
            return "state_holiday"
        if self.rule.jurisdiction == "US":
            return "federal_hours"
        assert self.zone is not None and self.rule.days is not None
        local = t.astimezone(dial_rules.zone(self.zone)).date()
        closed = self.rule.effective_on(local) and not self.rule.days[local.weekday()]
        return "state_day_closed" if closed else "state_hours"


@dataclass(frozen=True)
class Schedule:
    since: datetime
    until: datetime
    margin: timedelta
    allowed: tuple[iv.Interval, ...]
    constraints: tuple[Constraint, ...]

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Every table or team rule this schedule applied (for the audit)."""
        return tuple(dict.fromkeys(c.key for c in self.constraints if c.rule is not None))

    def covers(self, t: datetime) -> bool:
        return self.since <= t < self.until

    def allowed_at(self, t: datetime) -> bool:
        return iv.contains(self.allowed, t)

    def next_allowed(self, t: datetime) -> datetime | None:
        """The earliest instant ``>= t`` (within the range) at which a call may start."""
        return iv.first_at_or_after(self.allowed, max(t, self.since))

    def refusing(self, t: datetime) -> list[Constraint]:
        return [c for c in self.constraints if not iv.contains(c.allowed, t)]


def _local_days(zone: str, since: datetime, until: datetime) -> Iterable[date]:
    tz = dial_rules.zone(zone)
    day = since.astimezone(tz).date() - timedelta(days=1)
    last = until.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


def _window_intervals(rule: Rule, zone: str, since: datetime,
                      until: datetime) -> list[iv.Interval]:
    assert rule.days is not None
    tz = dial_rules.zone(zone)
    spans: list[iv.Interval] = []
    for day in _local_days(zone, since, until):
        if not rule.effective_on(day):
            spans.append((dial_rules.local_instant(day, _MIDNIGHT, tz),
                          dial_rules.local_instant(day + timedelta(days=1), _MIDNIGHT, tz)))
            continue
        for start, end in rule.days[day.weekday()]:
            spans.append((dial_rules.local_instant(day, start, tz),
                          dial_rules.local_instant(day, end, tz)))
    return iv.merge(spans)


def _holiday_intervals(table: RuleTable, rule: Rule, zone: str, since: datetime,
                       until: datetime) -> list[iv.Interval]:
    assert rule.calendar is not None
    tz = dial_rules.zone(zone)
    days = list(_local_days(zone, since, until))
    blocked: list[iv.Interval] = []
    for day in blocked_dates(table.calendars[rule.calendar], days[0], days[-1]):
        if not rule.effective_on(day):
            continue
        opens = dial_rules.local_instant(day, _MIDNIGHT, tz)
        closes = dial_rules.local_instant(day + timedelta(days=1), _MIDNIGHT, tz)
        if rule.holiday_hours is None:
            blocked.append((opens, closes))
        else:
            start, end = rule.holiday_hours
            blocked.append((opens, dial_rules.local_instant(day, start, tz)))
            blocked.append((dial_rules.local_instant(day, end, tz), closes))
    return iv.complement(iv.merge(blocked), since, until)


def _applicable(table: RuleTable, jset: JurisdictionSet, scope: Scope,
                extra_rules: Sequence[Rule]) -> list[Rule]:
    codes = jset.codes
    rules = [r for code in sorted(codes) for r in table.rules_for(code)]
    rules += [r for r in extra_rules if r.jurisdiction in codes]
    return [r for r in rules if r.kind in TIME_KINDS and scope.applies(r, time_rule=True)]


def compose(
    table: RuleTable,
    jset: JurisdictionSet,
    scope: Scope,
    *,
    since: datetime,
    until: datetime,
    campaign_window: dial_rules.CallWindow | None = None,
    legal: dial_rules.LegalHours | None = None,
    margin: timedelta = DEFAULT_MARGIN,
    blackouts: Sequence[Blackout] = (),
    extra_rules: Sequence[Rule] = (),
) -> Schedule:
    """Compose the allowed start times of calls to a contact over ``[since, until)``."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be timezone-aware")
    if margin < timedelta(0):
        raise ValueError("the safety margin must be zero or more")
    # Build every constraint a day (plus the margin) past the range, so an interval that only
    # seems to end at ``until`` is not shrunk as if it closed there.
    reach = until + margin + timedelta(days=1)
    zones = jset.zone_names
    constraints: list[Constraint] = []

    def add(key: str, kind: str, zone: str | None, spans: list[iv.Interval],
            rule: Rule | None = None, shrink: bool = True) -> None:
        spans = iv.merge(spans)
        if shrink:
            spans = iv.shrink_ends(spans, margin, keep_end=reach)
        constraints.append(Constraint(key, kind, zone, tuple(iv.intersect(spans,
                                                                           [(since, until)])),
                                      rule))

    if legal is not None:
        for zone in zones:
            add("team/legal-hours", "legal", zone,
                dial_rules.window_spans(dial_rules.legal_window(legal, zone), since, reach))
    for rule in _applicable(table, jset, scope, extra_rules):
        rule_zones = list(zones)
        if rule.also_in_zone and rule.also_in_zone not in rule_zones:
            rule_zones.append(rule.also_in_zone)
        for zone in rule_zones:
            if rule.kind == "window":
                add(rule.id, "window", zone, _window_intervals(rule, zone, since, reach), rule)
            else:
                add(rule.id, "holidays", zone,
                    _holiday_intervals(table, rule, zone, since, reach), rule)
    for b in blackouts:
        if b.jurisdiction in jset.codes and b.start < reach and b.end > since:
            add(b.id, "blackout", None, iv.complement([(b.start, b.end)], since, reach))
    if campaign_window is not None:
        add("campaign/window", "campaign", campaign_window.tz,
            dial_rules.window_spans(campaign_window, since, until), shrink=False)
    allowed = iv.intersect_all((c.allowed for c in constraints), since, until)
    return Schedule(since, until, margin, tuple(allowed), tuple(constraints))
