"""The compliance matrix: every jurisdiction x weekday x hour, through resolution, composition
and the decision, against the calling hours written out here by hand from the research table
(AI-voice telemarketing with written consent and every attestation, so only time decides).

The week of 16-22 November 2026 has no holiday in any banning state, Pennsylvania's SB 992
hours are in force (from 2026-10-18), and standard time is the local clock everywhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from callfleet.compliance.decision import Consent, evaluate
from callfleet.compliance.jurisdiction import JurisdictionSet, resolve
from callfleet.compliance.schedule import Schedule, Scope, compose
from callfleet.compliance.table import REQUIREMENTS, shipped_table
from callfleet.dialer.rules import WEEKDAYS, LegalHours

TABLE = shipped_table()
MONDAY = date(2026, 11, 16)
SCOPE = Scope(purpose="telemarketing", attestations=frozenset(REQUIREMENTS))

ALL = "all"
# state: (zone, {weekday: (first hour, end hour) | None}); "all" = every day.
HOURS: dict[str, tuple[str, dict[str, tuple[int, int] | None]]] = {
    "AL": ("America/Chicago", {"mon-sat": (8, 20), "sun": None}),
    "CA": ("America/Los_Angeles", {ALL: (8, 21)}),
    "CT": ("America/New_York", {ALL: (9, 20)}),
    "DE": ("America/New_York", {ALL: (8, 21)}),
    "FL": ("America/New_York", {ALL: (8, 20)}),
    "GA": ("America/New_York", {ALL: (8, 21)}),
    "IL": ("America/Chicago", {ALL: (8, 21)}),
    "IN": ("America/Indiana/Indianapolis", {ALL: (9, 20)}),
    "KY": ("America/New_York", {ALL: (10, 21)}),
    "LA": ("America/Chicago", {"mon-sat": (8, 20), "sun": None}),
    "MA": ("America/New_York", {ALL: (8, 20)}),
    "MD": ("America/New_York", {ALL: (8, 20)}),
    "ME": ("America/New_York", {"mon-fri": (9, 17), "sat-sun": None}),
    "MI": ("America/Detroit", {ALL: (9, 21)}),
    "MN": ("America/Chicago", {ALL: (9, 21)}),
    "MS": ("America/Chicago", {"mon-sat": (8, 20), "sun": None}),
    "NE": ("America/Chicago", {"mon-sat": (8, 21), "sun": (13, 21)}),
    "NM": ("America/Denver", {ALL: (9, 21)}),
    "NV": ("America/Los_Angeles", {ALL: (9, 20)}),
    "NY": ("America/New_York", {ALL: (8, 21)}),
    "OK": ("America/Chicago", {ALL: (9, 20)}),
    "PA": ("America/New_York", {"mon-sat": (9, 19), "sun": None}),
    "RI": ("America/New_York", {"mon-fri": (9, 18), "sat": (10, 17), "sun": None}),
    "SD": ("America/Chicago", {"mon-fri": (9, 21), "sat-sun": None}),
    "TX": ("America/Chicago", {"mon-sat": (9, 21), "sun": (12, 21)}),
    "UT": ("America/Denver", {"mon-sat": (8, 21), "sun": None}),
    "WA": ("America/Los_Angeles", {ALL: (8, 20)}),
    "WY": ("America/Denver", {ALL: (8, 20)}),
}
#: States with no hours of their own: the federal rule is the one that refuses.
FEDERAL_ONLY = {"CA", "DE", "GA"}


def expand(spec: dict[str, tuple[int, int] | None]) -> list[tuple[int, int] | None]:
    out: list[tuple[int, int] | None] = [None] * 7
    for key, hours in spec.items():
        names = WEEKDAYS if key == ALL else key.split("-")
        first, last = WEEKDAYS.index(names[0]), WEEKDAYS.index(names[-1])
        for i in range(first, last + 1):
            out[i] = hours
    return out


@cache
def setup(state: str) -> tuple[JurisdictionSet, Schedule]:
    zone = HOURS[state][0]
    jset = resolve(TABLE, state=state, contact_tz=zone)
    since = datetime.combine(MONDAY, datetime.min.time(), UTC)
    schedule = compose(TABLE, jset, SCOPE, since=since, until=since + timedelta(days=8),
                       legal=LegalHours())
    return jset, schedule


@pytest.mark.parametrize("state", sorted(HOURS))
def test_jurisdiction_hour_weekday_matrix(state: str) -> None:
    zone, spec = HOURS[state]
    jset, schedule = setup(state)
    assert jset.zone_names == (zone,) and f"US-{state}" in jset.codes
    week = expand(spec)
    wrong = []
    for offset in range(7):
        day = MONDAY + timedelta(days=offset)
        hours = week[day.weekday()]
        for hour in range(24):
            local = datetime(day.year, day.month, day.day, hour, 30, tzinfo=ZoneInfo(zone))
            d = evaluate(TABLE, jset, SCOPE, schedule, now=local.astimezone(UTC),
                         consent=Consent("prior_express_written"))
            expected = hours is not None and hours[0] <= hour < hours[1]
            if hours is None:
                reason = "state_day_closed"
            elif state in FEDERAL_ONLY:
                reason = "federal_hours"
            else:
                reason = "state_hours"
            got = (d.outcome, d.reason)
            want = ("allow", None) if expected else ("defer", reason)
            if got != want:
                wrong.append(f"{WEEKDAYS[day.weekday()]} {hour:02d}:30 {got} != {want}")
    assert not wrong, wrong


@pytest.mark.parametrize("state", sorted(HOURS))
def test_each_window_opens_exactly_on_the_hour_and_closes_two_minutes_early(state: str) -> None:
    zone, spec = HOURS[state]
    _, schedule = setup(state)
    tz = ZoneInfo(zone)
    for offset, hours in enumerate(expand(spec)):
        if hours is None:
            continue
        day = MONDAY + timedelta(days=offset)
        opens = datetime(day.year, day.month, day.day, hours[0], tzinfo=tz).astimezone(UTC)
        closes = datetime(day.year, day.month, day.day, hours[1], tzinfo=tz).astimezone(UTC)
        assert schedule.next_allowed(opens - timedelta(hours=1)) == opens
        assert schedule.allowed_at(closes - timedelta(minutes=2, microseconds=1))
        assert not schedule.allowed_at(closes - timedelta(minutes=2))


def test_research_matrix_examples() -> None:
    def decide(state: str, local: datetime, scope: Scope = SCOPE) -> tuple[str, str | None]:
        zone = HOURS[state][0]
        jset = resolve(TABLE, state=state, contact_tz=zone)
        now = local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
        schedule = compose(TABLE, jset, scope, since=now, until=now + timedelta(days=3),
                           legal=LegalHours())
        d = evaluate(TABLE, jset, scope, schedule, now=now,
                     consent=Consent("prior_express_written"))
        return d.outcome, d.reason

    sunday = datetime(2026, 11, 22)
    assert decide("TX", sunday.replace(hour=11, minute=59)) == ("defer", "state_hours")
    assert decide("TX", sunday.replace(hour=12)) == ("allow", None)
    assert decide("ME", datetime(2026, 11, 21, 10)) == ("defer", "state_day_closed")
    assert decide("OK", datetime(2026, 11, 17, 8, 30)) == ("defer", "state_hours")
    live = Scope(purpose="telemarketing", technology="live")
    assert decide("OK", datetime(2026, 11, 17, 8, 30), live) == ("allow", None)
