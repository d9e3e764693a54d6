"""The calling-rule table: loading and strict validation (pure; no database, no clock).

The table is data shipped in the package (``compliance/rules/us.toml``): per jurisdiction, its
calling windows per weekday, holiday bans (as calendar *rules*, expanded by
:mod:`callfleet.compliance.holidays`), frequency caps, requirements (consent, a live
announcement), disclosure deadlines, recording notices and hooks for emergency blackouts;
every rule with its sources, a confidence mark and effective dates. ``docs/compliance.md``
explains the format; this module is its only reader, and it refuses anything it does not
understand: an unknown key, a time that is not ``HH:MM``, a weekday listed twice or missing,
overlapping time ranges, a window wider than the federal 08:00-21:00 that does not say so,
two window rules that leave no time on a day, a reference to an unknown jurisdiction or
calendar, a calendar that does not expand. A table that loads is one the engine can apply.

The version and the SHA-256 of the file's bytes identify the table in every dial decision.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from callfleet.compliance.holidays import Calendar, HolidayEntry, blocked_dates
from callfleet.dialer import rules as dial_rules

__all__ = [
    "CONFIDENCES",
    "KINDS",
    "PURPOSES",
    "REQUIREMENTS",
    "TECHNOLOGIES",
    "Calendar",
    "HolidayEntry",
    "Jurisdiction",
    "Rule",
    "RuleTable",
    "Source",
    "TableError",
    "load_table",
    "parse_rules",
    "parse_table",
    "shipped_table",
]

CONFIDENCES: tuple[str, ...] = ("verified", "secondary", "conflicting", "pending")
PURPOSES: tuple[str, ...] = ("telemarketing", "informational")
TECHNOLOGIES: tuple[str, ...] = ("artificial_voice", "live", "any")
KINDS: tuple[str, ...] = (
    "window",
    "holidays",
    "frequency_cap",
    "requirement",
    "blackout_hook",
    "disclosure",
    "recording_notice",
    "abandonment",
)
REQUIREMENTS: tuple[str, ...] = (
    "prior_express_written_consent",
    "prior_express_consent",
    "natural_voice_announcement",
    "established_business_relationship",
)
DISCLOSURE_ITEMS: tuple[str, ...] = (
    "identity",
    "business",
    "purpose",
    "callback_number",
    "opt_out",
    "ai_disclosure",
)
CAP_COUNTS: tuple[str, ...] = ("attempts", "completed")
OBSERVANCES: frozenset[str] = frozenset(
    f"{way}_{day}" for way in ("prev", "next") for day in dial_rules.WEEKDAYS
)
BLOCKS: tuple[str, ...] = ("actual", "observed")
ELECTION_YEARS: tuple[str, ...] = ("all", "even", "odd")

#: The federal calling hours; a window rule must lie inside them unless it says
#: ``wider_than_federal = true``.
FEDERAL_START, FEDERAL_END = time(8, 0), time(21, 0)

_VERSION = re.compile(r"[0-9]{4}\.[0-9]{2}\.[0-9]+")
_JURISDICTION = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")
_RULE_ID = re.compile(r"[A-Za-z0-9-]+/[a-z0-9][a-z0-9-]*")
_MONTH_DAY = re.compile(r"([0-9]{2})-([0-9]{2})")

_COMMON_KEYS = frozenset({
    "id", "jurisdiction", "kind", "purposes", "technologies", "confidence", "effective_from",
    "effective_to", "sources", "note",
})
_KIND_KEYS: dict[str, frozenset[str]] = {
    "window": frozenset({"days", "also_in_zone", "wider_than_federal"}),
    "holidays": frozenset({"calendar", "holiday_hours"}),
    "frequency_cap": frozenset({"max_calls", "per_hours", "counts"}),
    "requirement": frozenset({"requires"}),
    "blackout_hook": frozenset(),
    "disclosure": frozenset({"deadline_seconds", "items"}),
    "recording_notice": frozenset(),
    "abandonment": frozenset({"max_rate", "greeting_seconds", "period_days"}),
}
_TOP_KEYS = frozenset({"schema", "ruleset", "version", "as_of", "jurisdictions", "rules",
                       "calendars"})
_TEAM_TOP_KEYS = frozenset({"rules"})
_JURISDICTION_KEYS = frozenset({"name", "zones", "area_code_presumption"})
_CALENDAR_KEYS = frozenset({"name", "block", "observe", "holidays"})
_HOLIDAY_KEYS = frozenset({"name", "fixed", "nth_weekday", "easter_offset", "election_day",
                           "dates", "observe", "offset_days", "effective_from", "effective_to",
                           "confidence"})
_HOLIDAY_DATE_KINDS = ("fixed", "nth_weekday", "easter_offset", "election_day", "dates")
_SOURCE_KEYS = frozenset({"cite", "url"})
_NTH_KEYS = frozenset({"month", "weekday", "n"})


T = TypeVar("T")


class TableError(ValueError):
    """The rule table is invalid; ``errors`` lists every problem, each naming its place."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        shown = "; ".join(errors[:20])
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        super().__init__(f"invalid calling-rule table: {shown}{more}")


@dataclass(frozen=True)
class Source:
    cite: str
    url: str


@dataclass(frozen=True)
class Jurisdiction:
    """A place whose rules apply: ``US`` (federal), ``US-FL`` (ISO 3166-2)."""

    code: str
    name: str
    zones: tuple[str, ...]
    area_code_presumption: bool = False


@dataclass(frozen=True, eq=False)
class Rule:
    """One rule of the table. Which fields are set depends on ``kind`` (see :data:`KINDS`).

    Compared and hashed by identity: a rule is one object of one loaded table, and the
    dialer's caches key on rules many times a second.

    ``days`` (windows) is indexed by :meth:`date.weekday`: a tuple of ``(start, end)`` local
    times, half-open, per weekday; an empty tuple means the day is closed.
    """

    id: str
    jurisdiction: str
    kind: str
    purposes: frozenset[str]
    technologies: frozenset[str]
    confidence: str
    effective_from: date | None
    effective_to: date | None
    sources: tuple[Source, ...]
    note: str | None = None
    days: tuple[tuple[tuple[time, time], ...], ...] | None = None
    also_in_zone: str | None = None
    wider_than_federal: bool = False
    calendar: str | None = None
    holiday_hours: tuple[time, time] | None = None
    max_calls: int | None = None
    per_hours: float | None = None
    counts: str | None = None
    requires: str | None = None
    deadline_seconds: int | None = None
    items: tuple[str, ...] = ()
    max_rate: float | None = None
    greeting_seconds: float | None = None
    period_days: int | None = None
    team: bool = False

    def effective_on(self, day: date) -> bool:
        """In force on ``day``. A ``pending`` rule without a start date is never enforced."""
        if self.effective_from is None:
            return False
        if day < self.effective_from:
            return False
        return self.effective_to is None or day <= self.effective_to

    def covers(self, purpose: str, technology: str) -> bool:
        """Does the rule's scope include a call of this purpose made with this technology?"""
        return purpose in self.purposes and (
            "any" in self.technologies or technology in self.technologies
        )


@dataclass(frozen=True, eq=False)
class RuleTable:
    """A loaded table (compared and hashed by identity, like its rules)."""

    ruleset: str
    version: str
    as_of: date
    sha256: str
    jurisdictions: Mapping[str, Jurisdiction]
    rules: tuple[Rule, ...]
    calendars: Mapping[str, Calendar]

    def __post_init__(self) -> None:
        by_code: dict[str, list[Rule]] = {}
        for r in self.rules:
            by_code.setdefault(r.jurisdiction, []).append(r)
        object.__setattr__(self, "by_jurisdiction",
                           {code: tuple(rules) for code, rules in by_code.items()})
        object.__setattr__(self, "by_id", {r.id: r for r in self.rules})

    def rules_for(self, code: str) -> tuple[Rule, ...]:
        return self.by_jurisdiction.get(code, ())  # type: ignore[attr-defined,no-any-return]

    def rule(self, rule_id: str) -> Rule | None:
        return self.by_id.get(rule_id)  # type: ignore[attr-defined,no-any-return]

    def with_rules(self, extra: Iterable[Rule]) -> RuleTable:
        """This table plus ``extra`` rules (a team's own), same version and digest."""
        added = tuple(extra)
        if not added:
            return self
        return RuleTable(self.ruleset, self.version, self.as_of, self.sha256,
                         self.jurisdictions, self.rules + added, self.calendars)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def keys(self, where: str, value: Any, allowed: frozenset[str]) -> bool:
        if not isinstance(value, dict):
            self.add(where, "expected a table")
            return False
        for key in sorted(set(value) - allowed):
            self.add(where, f"unknown key {key!r}")
        return True


def _text(errs: _Errors, where: str, value: Any, *, limit: int = 500) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errs.add(where, "expected a non-empty string")
        return None
    if len(value) > limit:
        errs.add(where, f"longer than {limit} characters")
        return None
    return value


def _date(errs: _Errors, where: str, value: Any) -> date | None:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    errs.add(where, f"expected a date like 2026-01-31, got {value!r}")
    return None


def _int(errs: _Errors, where: str, value: Any, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        errs.add(where, f"expected a whole number {lo}..{hi}, got {value!r}")
        return None
    return value


def _number(errs: _Errors, where: str, value: Any, lo: float, hi: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        errs.add(where, f"expected a number {lo:g}..{hi:g}, got {value!r}")
        return None
    return float(value)


def _hhmm(errs: _Errors, where: str, value: Any) -> time | None:
    try:
        parsed = dial_rules.parse_hhmm(value)
    except (TypeError, ValueError) as exc:
        errs.add(where, str(exc))
        return None
    if parsed.second:
        errs.add(where, f"{value!r}: rule times are whole minutes (HH:MM)")
        return None
    return parsed


def _choices(errs: _Errors, where: str, value: Any, allowed: tuple[str, ...]) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        errs.add(where, f"expected a non-empty list of {', '.join(allowed)}")
        return frozenset()
    out: set[str] = set()
    for item in value:
        if item not in allowed:
            errs.add(where, f"unknown value {item!r} (use {', '.join(allowed)})")
        elif item in out:
            errs.add(where, f"{item!r} listed twice")
        else:
            out.add(item)
    return frozenset(out)


def _day_keys(errs: _Errors, where: str, key: str) -> list[int]:
    names = key.split("-")
    if len(names) not in (1, 2) or any(n not in dial_rules.WEEKDAYS for n in names):
        errs.add(where, f"unknown day {key!r} (use mon..sun or a range like mon-fri)")
        return []
    first = dial_rules.WEEKDAYS.index(names[0])
    last = dial_rules.WEEKDAYS.index(names[-1])
    if last < first:
        errs.add(where, f"day range {key!r} runs backwards")
        return []
    return list(range(first, last + 1))


def _ranges(errs: _Errors, where: str, value: Any) -> tuple[tuple[time, time], ...] | None:
    if not isinstance(value, list):
        errs.add(where, 'expected a list of ["HH:MM", "HH:MM"] pairs ([] = closed)')
        return None
    out: list[tuple[time, time]] = []
    for i, pair in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            errs.add(here, 'expected ["HH:MM", "HH:MM"]')
            continue
        start, end = _hhmm(errs, here, pair[0]), _hhmm(errs, here, pair[1])
        if start is None or end is None:
            continue
        if start >= end:
            errs.add(here, "a range must start before it ends on the same day")
            continue
        out.append((start, end))
    out.sort()
    for (_, end), (start, _) in itertools.pairwise(out):
        if start < end:
            errs.add(where, "time ranges overlap")
    return tuple(out)


def _days(errs: _Errors, where: str, value: Any) -> tuple[tuple[tuple[time, time], ...], ...]:
    if not isinstance(value, dict) or not value:
        errs.add(where, "expected a table of weekday -> time ranges")
        return ()
    slots: list[tuple[tuple[time, time], ...] | None] = [None] * 7
    for key, ranges in value.items():
        parsed = _ranges(errs, f"{where}.{key}", ranges)
        for index in _day_keys(errs, f"{where}.{key}", key):
            if slots[index] is not None:
                errs.add(where, f"{dial_rules.WEEKDAYS[index]} is listed more than once")
            slots[index] = parsed if parsed is not None else ()
    missing = [dial_rules.WEEKDAYS[i] for i, s in enumerate(slots) if s is None]
    if missing:
        errs.add(where, f"every weekday must be listed ([] = closed); missing {missing}")
    return tuple(s or () for s in slots)


def _observe(errs: _Errors, where: str, value: Any) -> dict[int, str]:
    if not isinstance(value, dict):
        errs.add(where, 'expected a table like { sat = "prev_fri", sun = "next_mon" }')
        return {}
    out: dict[int, str] = {}
    for key, how in value.items():
        if key not in dial_rules.WEEKDAYS:
            errs.add(where, f"unknown day {key!r}")
            continue
        if how not in OBSERVANCES:
            errs.add(f"{where}.{key}", f"unknown observance {how!r} (e.g. prev_fri, next_mon)")
            continue
        out[dial_rules.WEEKDAYS.index(key)] = how
    return out


def _zone_name(errs: _Errors, where: str, value: Any) -> str | None:
    try:
        dial_rules.zone(value)
    except ValueError as exc:
        errs.add(where, str(exc))
        return None
    return str(value)


def _sources(errs: _Errors, where: str, value: Any) -> tuple[Source, ...]:
    if not isinstance(value, list) or not value:
        errs.add(where, "every rule needs at least one source { cite, url }")
        return ()
    out = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        if not errs.keys(here, item, _SOURCE_KEYS):
            continue
        cite = _text(errs, f"{here}.cite", item.get("cite"))
        url = _text(errs, f"{here}.url", item.get("url"), limit=1000)
        if url is not None and not url.startswith("https://"):
            errs.add(f"{here}.url", "expected an https:// address")
        if cite and url:
            out.append(Source(cite, url))
    return tuple(out)


def _holiday(errs: _Errors, where: str, raw: Any) -> HolidayEntry | None:
    if not errs.keys(where, raw, _HOLIDAY_KEYS):
        return None
    name = _text(errs, f"{where}.name", raw.get("name"), limit=200)
    given = [k for k in _HOLIDAY_DATE_KINDS if k in raw]
    if len(given) != 1:
        errs.add(where, f"give exactly one of {', '.join(_HOLIDAY_DATE_KINDS)}")
        return None
    entry: dict[str, Any] = {}
    kind = given[0]
    value = raw[kind]
    if kind == "fixed":
        m = _MONTH_DAY.fullmatch(value) if isinstance(value, str) else None
        month_day = (int(m.group(1)), int(m.group(2))) if m else None
        if month_day is None or not _valid_month_day(*month_day):
            errs.add(f"{where}.fixed", f"expected a month-day like 07-04, got {value!r}")
            return None
        entry["fixed"] = month_day
    elif kind == "nth_weekday":
        if not errs.keys(f"{where}.nth_weekday", value, _NTH_KEYS):
            return None
        month = _int(errs, f"{where}.nth_weekday.month", value.get("month"), 1, 12)
        n = _int(errs, f"{where}.nth_weekday.n", value.get("n"), -5, 5)
        weekday = value.get("weekday")
        if weekday not in dial_rules.WEEKDAYS:
            errs.add(f"{where}.nth_weekday.weekday", f"unknown day {weekday!r}")
            return None
        if month is None or n is None or n == 0 or n < -1:
            if n is not None and (n == 0 or n < -1):
                errs.add(f"{where}.nth_weekday.n", "use 1..5, or -1 for the last")
            return None
        entry["nth_weekday"] = (month, dial_rules.WEEKDAYS.index(weekday), n)
    elif kind == "easter_offset":
        offset = _int(errs, f"{where}.easter_offset", value, -200, 200)
        if offset is None:
            return None
        entry["easter_offset"] = offset
    elif kind == "election_day":
        if value not in ELECTION_YEARS:
            errs.add(f"{where}.election_day", f"use one of {', '.join(ELECTION_YEARS)}")
            return None
        entry["election_day"] = value
    else:
        if not isinstance(value, list) or not value:
            errs.add(f"{where}.dates", "expected a non-empty list of dates")
            return None
        days = [_date(errs, f"{where}.dates", d) for d in value]
        if any(d is None for d in days):
            return None
        if len(set(days)) != len(days):
            errs.add(f"{where}.dates", "a date is listed twice")
        entry["dates"] = tuple(sorted(d for d in days if d is not None))
    if "observe" in raw:
        if kind == "dates":
            errs.add(f"{where}.observe", "explicit dates are not shifted")
        entry["observe"] = _observe(errs, f"{where}.observe", raw["observe"])
    if "offset_days" in raw:
        offset = _int(errs, f"{where}.offset_days", raw["offset_days"], -31, 31)
        if offset is not None:
            entry["offset_days"] = offset
    for key in ("effective_from", "effective_to"):
        if key in raw:
            entry[key] = _date(errs, f"{where}.{key}", raw[key])
    if entry.get("effective_from") and entry.get("effective_to") and \
            entry["effective_to"] < entry["effective_from"]:
        errs.add(where, "effective_to is before effective_from")
    if "confidence" in raw:
        if raw["confidence"] not in CONFIDENCES:
            errs.add(f"{where}.confidence", f"use one of {', '.join(CONFIDENCES)}")
        else:
            entry["confidence"] = raw["confidence"]
    if name is None:
        return None
    return HolidayEntry(name=name, **entry)


def _valid_month_day(month: int, day: int) -> bool:
    try:
        date(2024, month, day)  # a leap year, so 02-29 is accepted
    except ValueError:
        return False
    return True


def _calendar(errs: _Errors, code: str, raw: Any) -> Calendar | None:
    where = f"calendars.{code}"
    if not errs.keys(where, raw, _CALENDAR_KEYS):
        return None
    name = _text(errs, f"{where}.name", raw.get("name"), limit=200)
    block = _choices(errs, f"{where}.block", raw.get("block", list(BLOCKS)), BLOCKS)
    default_observe = _observe(errs, f"{where}.observe", raw.get("observe", {}))
    entries = raw.get("holidays")
    if not isinstance(entries, list) or not entries:
        errs.add(f"{where}.holidays", "expected a non-empty list of holidays")
        return None
    holidays = []
    seen: dict[str, int] = {}
    for i, item in enumerate(entries):
        entry = _holiday(errs, f"{where}.holidays[{i}]", item)
        if entry is None:
            continue
        if "observe" not in item:
            entry = HolidayEntry(**{**entry.__dict__, "observe": default_observe})
        if entry.name in seen:
            errs.add(f"{where}.holidays[{i}]", f"{entry.name!r} is already entry {seen[entry.name]}")
        seen[entry.name] = i
        holidays.append(entry)
    defs = [(h.fixed, h.nth_weekday, h.easter_offset, h.election_day, h.dates, h.offset_days)
            for h in holidays]
    for i, d in enumerate(defs):
        if d in defs[:i]:
            errs.add(where, f"{holidays[i].name!r} repeats the date rule of "
                            f"{holidays[defs.index(d)].name!r}")
    if name is None:
        return None
    return Calendar(code=code, name=name, block=block, holidays=tuple(holidays))


def _rule(errs: _Errors, where: str, raw: Any, *, team: bool) -> Rule | None:
    if not isinstance(raw, dict):
        errs.add(where, "expected a table")
        return None
    kind = raw.get("kind")
    if kind not in KINDS:
        errs.add(f"{where}.kind", f"unknown kind {kind!r} (use {', '.join(KINDS)})")
        return None
    rule_id = raw.get("id")
    if isinstance(rule_id, str):
        where = f"{where} ({rule_id})"
    errs.keys(where, raw, _COMMON_KEYS | _KIND_KEYS[kind])
    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id) or len(rule_id) > 80:
        errs.add(f"{where}.id", "expected an id like US-FL/hours")
        return None
    jurisdiction = raw.get("jurisdiction")
    if not isinstance(jurisdiction, str) or not _JURISDICTION.fullmatch(jurisdiction):
        errs.add(f"{where}.jurisdiction", "expected a code like US or US-FL")
        return None
    if not team and not rule_id.startswith(f"{jurisdiction}/"):
        errs.add(f"{where}.id", f"must start with its jurisdiction, {jurisdiction}/")
    confidence = raw.get("confidence")
    if confidence not in CONFIDENCES:
        errs.add(f"{where}.confidence", f"use one of {', '.join(CONFIDENCES)}")
    start = _date(errs, f"{where}.effective_from", raw["effective_from"]) \
        if "effective_from" in raw else None
    if start is None and confidence != "pending" and "effective_from" not in raw:
        errs.add(f"{where}.effective_from", "required (only a pending rule may leave it out)")
    end = _date(errs, f"{where}.effective_to", raw["effective_to"]) \
        if "effective_to" in raw else None
    if start and end and end < start:
        errs.add(where, "effective_to is before effective_from")
    fields: dict[str, Any] = {
        "id": rule_id, "jurisdiction": jurisdiction, "kind": kind,
        "purposes": _choices(errs, f"{where}.purposes", raw.get("purposes"), PURPOSES),
        "technologies": _choices(errs, f"{where}.technologies", raw.get("technologies"),
                                 TECHNOLOGIES),
        "confidence": confidence, "effective_from": start, "effective_to": end,
        "sources": _sources(errs, f"{where}.sources", raw.get("sources")), "team": team,
    }
    if "note" in raw:
        fields["note"] = _text(errs, f"{where}.note", raw["note"], limit=1000)
    _kind_fields(errs, where, kind, raw, fields)
    return Rule(**fields)


def _kind_fields(errs: _Errors, where: str, kind: str, raw: dict[str, Any],
                 fields: dict[str, Any]) -> None:
    def need(key: str) -> Any:
        if key not in raw:
            errs.add(where, f"a {kind} rule needs {key!r}")
        return raw.get(key)

    if kind == "window":
        days = _days(errs, f"{where}.days", need("days"))
        fields["days"] = days
        wider = raw.get("wider_than_federal", False)
        if not isinstance(wider, bool):
            errs.add(f"{where}.wider_than_federal", "expected true or false")
            wider = False
        fields["wider_than_federal"] = wider
        if not wider and any(s < FEDERAL_START or e > FEDERAL_END for d in days for s, e in d):
            errs.add(f"{where}.days", "reaches outside the federal 08:00-21:00; say "
                                      "wider_than_federal = true if that is intended")
        if "also_in_zone" in raw:
            fields["also_in_zone"] = _zone_name(errs, f"{where}.also_in_zone",
                                                raw["also_in_zone"])
    elif kind == "holidays":
        fields["calendar"] = _text(errs, f"{where}.calendar", need("calendar"), limit=40)
        if "holiday_hours" in raw:
            pair = _ranges(errs, f"{where}.holiday_hours", [raw["holiday_hours"]])
            fields["holiday_hours"] = pair[0] if pair else None
    elif kind == "frequency_cap":
        fields["max_calls"] = _int(errs, f"{where}.max_calls", need("max_calls"), 1, 1000)
        fields["per_hours"] = _number(errs, f"{where}.per_hours", need("per_hours"), 0.5,
                                      24 * 366)
        counts = raw.get("counts", "attempts")
        if counts not in CAP_COUNTS:
            errs.add(f"{where}.counts", f"use one of {', '.join(CAP_COUNTS)}")
        fields["counts"] = counts
    elif kind == "requirement":
        requires = need("requires")
        if requires not in REQUIREMENTS:
            errs.add(f"{where}.requires", f"use one of {', '.join(REQUIREMENTS)}")
        fields["requires"] = requires
    elif kind == "disclosure":
        fields["deadline_seconds"] = _int(errs, f"{where}.deadline_seconds",
                                          need("deadline_seconds"), 0, 600)
        fields["items"] = tuple(sorted(_choices(errs, f"{where}.items", need("items"),
                                                DISCLOSURE_ITEMS)))
    elif kind == "abandonment":
        fields["max_rate"] = _number(errs, f"{where}.max_rate", need("max_rate"), 0, 1)
        fields["greeting_seconds"] = _number(errs, f"{where}.greeting_seconds",
                                             need("greeting_seconds"), 0, 60)
        fields["period_days"] = _int(errs, f"{where}.period_days", need("period_days"), 1, 366)


def _jurisdiction(errs: _Errors, code: str, raw: Any) -> Jurisdiction | None:
    where = f"jurisdictions.{code}"
    if not _JURISDICTION.fullmatch(code):
        errs.add(where, "expected a code like US or US-FL")
        return None
    if not errs.keys(where, raw, _JURISDICTION_KEYS):
        return None
    name = _text(errs, f"{where}.name", raw.get("name"), limit=200)
    zones = raw.get("zones", [])
    if not isinstance(zones, list):
        errs.add(f"{where}.zones", "expected a list of IANA zone names")
        zones = []
    checked = tuple(z for z in (_zone_name(errs, f"{where}.zones", z) for z in zones) if z)
    presumption = raw.get("area_code_presumption", False)
    if not isinstance(presumption, bool):
        errs.add(f"{where}.area_code_presumption", "expected true or false")
        presumption = False
    if code != "US" and code.startswith("US-") and not checked:
        errs.add(f"{where}.zones", "a state needs at least one zone")
    if name is None:
        return None
    return Jurisdiction(code=code, name=name, zones=checked, area_code_presumption=presumption)


def _scopes_overlap(a: Rule, b: Rule) -> bool:
    techs_meet = "any" in a.technologies or "any" in b.technologies or bool(
        a.technologies & b.technologies)
    return bool(a.purposes & b.purposes) and techs_meet


def _periods_overlap(a: Rule, b: Rule) -> bool:
    a_start, b_start = a.effective_from or date.min, b.effective_from or date.min
    a_end, b_end = a.effective_to or date.max, b.effective_to or date.max
    return a_start <= b_end and b_start <= a_end


def _ranges_meet(a: tuple[tuple[time, time], ...], b: tuple[tuple[time, time], ...]) -> bool:
    return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)


def _cross_checks(errs: _Errors, rules: list[Rule], jurisdictions: Mapping[str, Jurisdiction],
                  calendars: Mapping[str, Calendar], *, team: bool) -> None:
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            errs.add(f"rules ({r.id})", "duplicate rule id")
        seen.add(r.id)
        if r.jurisdiction not in jurisdictions:
            errs.add(f"rules ({r.id})", f"unknown jurisdiction {r.jurisdiction!r}")
        if r.kind == "holidays" and r.calendar and r.calendar not in calendars:
            errs.add(f"rules ({r.id})", f"unknown calendar {r.calendar!r}")
    windows = [r for r in rules if r.kind == "window" and r.days]
    for i, a in enumerate(windows):
        for b in windows[i + 1:]:
            if a.jurisdiction != b.jurisdiction or not _scopes_overlap(a, b) \
                    or not _periods_overlap(a, b):
                continue
            for day in range(7):
                if a.days[day] and b.days[day] and not _ranges_meet(a.days[day], b.days[day]):
                    errs.add(f"rules ({a.id}, {b.id})",
                             f"contradictory: together they leave no time on "
                             f"{dial_rules.WEEKDAYS[day]}; close the day explicitly instead")
    caps = [r for r in rules if r.kind == "frequency_cap"]
    for i, a in enumerate(caps):
        for b in caps[i + 1:]:
            if a.jurisdiction == b.jurisdiction and a.per_hours == b.per_hours and \
                    a.counts == b.counts and _scopes_overlap(a, b) and _periods_overlap(a, b):
                errs.add(f"rules ({a.id}, {b.id})",
                         "overlapping caps over the same period; keep one")
    if not team:
        used = {r.calendar for r in rules if r.kind == "holidays"}
        for code in sorted(set(calendars) - used):
            errs.add(f"calendars.{code}", "not used by any holidays rule")


def _expand_all(errs: _Errors, calendars: Mapping[str, Calendar], as_of: date) -> None:
    from_year, to_year = as_of.year - 5, as_of.year + 5
    for code, cal in calendars.items():
        try:
            blocked_dates(cal, date(from_year, 1, 1), date(to_year, 12, 31))
        except ValueError as exc:
            errs.add(f"calendars.{code}", f"does not expand for {from_year}-{to_year}: {exc}")


def _section(errs: _Errors, data: Mapping[str, Any], name: str,
             parse: Callable[[_Errors, str, Any], T | None], *, required: bool) -> dict[str, T]:
    """A ``[name.<code>]`` section of the table, each entry parsed by ``parse``."""
    raw = data.get(name, None if required else {})
    if not isinstance(raw, dict) or (required and not raw):
        errs.add(name, f"expected a table of {name}")
        raw = {}
    parsed = ((code, parse(errs, code, entry)) for code, entry in raw.items())
    return {code: value for code, value in parsed if value is not None}


def parse_table(data: Mapping[str, Any], sha256: str) -> RuleTable:
    """Validate a decoded table (e.g. from :func:`tomllib.loads`); raise :class:`TableError`."""
    errs = _Errors()
    errs.keys("table", dict(data), _TOP_KEYS)
    if data.get("schema") != 1:
        errs.add("schema", "expected schema = 1")
    ruleset = _text(errs, "ruleset", data.get("ruleset"), limit=40)
    version = data.get("version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        errs.add("version", "expected a version like 2026.12.1")
    as_of = _date(errs, "as_of", data.get("as_of"))
    jurisdictions = _section(errs, data, "jurisdictions", _jurisdiction, required=True)
    calendars = _section(errs, data, "calendars", _calendar, required=False)
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        errs.add("rules", "expected a non-empty list of rules")
        raw_rules = []
    rules = [r for r in (_rule(errs, f"rules[{i}]", raw, team=False)
                         for i, raw in enumerate(raw_rules)) if r is not None]
    _cross_checks(errs, rules, jurisdictions, calendars, team=False)
    if as_of is not None:
        _expand_all(errs, calendars, as_of)
    if errs.items:
        raise TableError(errs.items)
    assert ruleset is not None and as_of is not None and isinstance(version, str)
    return RuleTable(ruleset=ruleset, version=version, as_of=as_of, sha256=sha256,
                     jurisdictions=jurisdictions, rules=tuple(rules), calendars=calendars)


def parse_rules(raw_rules: Any, table: RuleTable, *, prefix: str = "team") -> tuple[Rule, ...]:
    """Validate a team's own rules (same schema as the table's ``[[rules]]``) against
    ``table``: known jurisdictions and calendars, ids starting with ``prefix/``."""
    errs = _Errors()
    if not isinstance(raw_rules, list):
        raise TableError(["rules: expected a list of rules"])
    rules = [r for r in (_rule(errs, f"rules[{i}]", raw, team=True)
                         for i, raw in enumerate(raw_rules)) if r is not None]
    for r in rules:
        if not r.id.startswith(f"{prefix}/"):
            errs.add(f"rules ({r.id})", f"a team rule id starts with {prefix}/")
    _cross_checks(errs, [*table.rules, *rules], table.jurisdictions, table.calendars, team=True)
    if errs.items:
        raise TableError(errs.items)
    return tuple(rules)


def load_table(text: bytes) -> RuleTable:
    """Parse and validate a TOML table from its bytes."""
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TableError([f"not valid TOML: {exc}"]) from None
    return parse_table(data, hashlib.sha256(text).hexdigest())


@cache
def shipped_table(name: str = "us") -> RuleTable:
    """The table shipped with callfleet (``compliance/rules/<name>.toml``), loaded once."""
    text = resources.files("callfleet.compliance").joinpath("rules", f"{name}.toml").read_bytes()
    return load_table(text)

