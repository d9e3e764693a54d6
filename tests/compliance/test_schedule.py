"""Composed calling windows: against a minute-by-minute brute force (hypothesis, DST nights
included), golden clock-change cases, and the properties the composition must keep."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callfleet.compliance import intervals as iv
from callfleet.compliance.holidays import blocked_dates
from callfleet.compliance.jurisdiction import Found, JurisdictionSet, ZoneFound
from callfleet.compliance.schedule import Blackout, Scope, compose
from callfleet.compliance.table import Rule, parse_rules, shipped_table
from callfleet.dialer.rules import (
    WEEKDAYS,
    CallWindow,
    LegalHours,
    legal_contains,
    window_contains,
)
from tests.dialer.test_rules import zone_transitions

TABLE = shipped_table()
MINUTE = timedelta(minutes=1)
STATES = sorted(c for c in TABLE.jurisdictions if c.startswith("US-"))
US_ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
            "America/Los_Angeles", "America/Indiana/Indianapolis", "America/Detroit",
            "Etc/GMT+6"]


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def jset(codes: list[str], zones: list[str]) -> JurisdictionSet:
    return JurisdictionSet(tuple(Found(c, "state", "") for c in codes),
                           tuple(ZoneFound(z, "contact") for z in zones))


# ---------------------------------------------------------------------- the brute force
#
# An independent reading of the rules, one instant at a time: a local day's window runs from
# the first instant the zone's wall clock reaches its start to the first instant it reaches its
# end (which is what "a time in a gap opens when the clocks jump, a repeated time means its
# first occurrence" amounts to), found by scanning minutes, not by zoneinfo's fold arithmetic.


@cache
def reach(day: date, wall: time, zone: str) -> datetime:
    tz = ZoneInfo(zone)
    target = datetime.combine(day, wall)
    guess = target.replace(tzinfo=UTC) - timedelta(hours=16)
    for k in range(32 * 60 + 1):
        t = guess + k * MINUTE
        if t.astimezone(tz).replace(tzinfo=None) >= target:
            return t
    raise AssertionError("no instant reaches the wall time")


def local_days(t: datetime, zone: str) -> list[date]:
    today = t.astimezone(ZoneInfo(zone)).date()
    return [today - timedelta(days=1), today, today + timedelta(days=1)]


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    return reach(day, time(0), zone), reach(day + timedelta(days=1), time(0), zone)


def in_window_rule(rule: Rule, zone: str, t: datetime) -> bool:
    assert rule.days is not None
    for day in local_days(t, zone):
        opens, closes = day_bounds(day, zone)
        if not rule.effective_on(day):
            if opens <= t < closes:
                return True
            continue
        for start, end in rule.days[day.weekday()]:
            if reach(day, start, zone) <= t < reach(day, end, zone):
                return True
    return False


@cache
def calendar_days(code: str, year: int) -> frozenset[date]:
    return frozenset(blocked_dates(TABLE.calendars[code], date(year - 1, 12, 1),
                                   date(year + 1, 1, 31)))


def outside_holiday(rule: Rule, zone: str, t: datetime) -> bool:
    assert rule.calendar is not None
    for day in local_days(t, zone):
        opens, closes = day_bounds(day, zone)
        if not opens <= t < closes:
            continue
        if day in calendar_days(rule.calendar, day.year) and rule.effective_on(day):
            if rule.holiday_hours is None:
                return False
            start, end = rule.holiday_hours
            return reach(day, start, zone) <= t < reach(day, end, zone)
    return True


def legal_at(rules: list[Rule], zones: list[str], legal: LegalHours | None,
             blackouts: list[Blackout], t: datetime) -> bool:
    if legal is not None and not all(legal_contains(legal, z, t) for z in zones):
        return False
    for rule in rules:
        rule_zones = zones + ([rule.also_in_zone] if rule.also_in_zone else [])
        for zone in rule_zones:
            if rule.kind == "window" and not in_window_rule(rule, zone, t):
                return False
            if rule.kind == "holidays" and not outside_holiday(rule, zone, t):
                return False
    return all(not b.start <= t < b.end for b in blackouts)


def brute_force(rules: list[Rule], zones: list[str], legal: LegalHours | None,
                window: CallWindow | None, blackouts: list[Blackout], margin: timedelta,
                start: datetime, minutes: int) -> list[bool]:
    steps = int(margin / MINUTE)
    legal_ok = [legal_at(rules, zones, legal, blackouts, start + k * MINUTE)
                for k in range(minutes + steps + 1)]
    out = []
    for k in range(minutes):
        t = start + k * MINUTE
        ok = all(legal_ok[k:k + steps + 1]) and (window is None or window_contains(window, t))
        out.append(ok)
    return out


def applicable(codes: list[str], scope: Scope) -> list[Rule]:
    return [r for c in codes for r in TABLE.rules_for(c)
            if r.kind in ("window", "holidays") and scope.applies(r, time_rule=True)]


# ---------------------------------------------------------------------- strategies


@st.composite
def starts(draw: st.DrawFn) -> datetime:
    """A whole minute in 2025-2027; half the time within a day of a US clock change, and
    sometimes on a holiday of a banning state."""
    pick = draw(st.sampled_from(["any", "dst", "dst", "holiday"]))
    if pick == "dst":
        base = draw(st.sampled_from(zone_transitions()))
        return base + draw(st.integers(-30 * 60, 6 * 60)) * MINUTE
    if pick == "holiday":
        day = draw(st.sampled_from([date(2026, 7, 3), date(2026, 7, 6), date(2027, 7, 23),
                                    date(2026, 11, 3), date(2025, 1, 20), date(2027, 12, 31)]))
        return datetime.combine(day, time(0), UTC) + draw(st.integers(0, 36 * 60)) * MINUTE
    minutes = draw(st.integers(0, 3 * 365 * 24 * 60))
    return utc(2025, 1, 1) + minutes * MINUTE


hhmm = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 59]))


@st.composite
def call_windows(draw: st.DrawFn) -> CallWindow | None:
    if draw(st.booleans()):
        return None
    return CallWindow(draw(hhmm), draw(hhmm), draw(st.frozensets(st.sampled_from(WEEKDAYS),
                                                                 min_size=1)),
                      draw(st.sampled_from(US_ZONES[:5] + ["UTC", "Europe/Berlin"])))


@st.composite
def legal_hours(draw: st.DrawFn) -> LegalHours | None:
    if draw(st.integers(0, 4)) == 0:
        return None
    start = draw(st.builds(time, st.integers(0, 12), st.sampled_from([0, 30])))
    end = draw(st.builds(time, st.integers(13, 23), st.sampled_from([0, 30, 59])))
    return LegalHours(start, end)


SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(
    codes=st.lists(st.sampled_from(STATES), min_size=1, max_size=3, unique=True),
    zones=st.lists(st.sampled_from(US_ZONES), min_size=1, max_size=3, unique=True),
    purpose=st.sampled_from(["telemarketing", "informational"]),
    all_purposes=st.booleans(),
    window=call_windows(),
    legal=legal_hours(),
    margin=st.sampled_from([0, 0, 1, 2, 10]).map(lambda m: m * MINUTE),
    start=starts(),
    blackout=st.one_of(st.none(), st.tuples(st.integers(0, 40 * 60), st.integers(1, 600))),
)
def test_composed_windows_equal_a_minute_by_minute_brute_force(
    codes: list[str], zones: list[str], purpose: str, all_purposes: bool,
    window: CallWindow | None, legal: LegalHours | None, margin: timedelta, start: datetime,
    blackout: tuple[int, int] | None,
) -> None:
    codes = ["US", *codes]
    scope = Scope(purpose=purpose, time_rules_for_all_purposes=all_purposes)
    blackouts = [] if blackout is None else [Blackout(
        "blk_1", codes[1], start + blackout[0] * MINUTE,
        start + (blackout[0] + blackout[1]) * MINUTE, "test")]
    minutes = 40 * 60
    schedule = compose(TABLE, jset(codes, zones), scope, since=start,
                       until=start + minutes * MINUTE, campaign_window=window, legal=legal,
                       margin=margin, blackouts=blackouts)
    expected = brute_force(applicable(codes, scope), zones, legal, window, blackouts, margin,
                           start, minutes)
    got = [schedule.allowed_at(start + k * MINUTE) for k in range(minutes)]
    mismatches = [start + k * MINUTE for k in range(minutes) if got[k] != expected[k]]
    assert not mismatches, f"first mismatch at {mismatches[0]} (expected {expected[0]})"
    first = next((start + k * MINUTE for k in range(minutes) if expected[k]), None)
    assert schedule.next_allowed(start) == first
    # Whatever refuses an instant is really violated there, and the reasons are named.
    for k in range(0, minutes, 97):
        t = start + k * MINUTE
        refusing = schedule.refusing(t)
        assert bool(refusing) != expected[k]
        for c in refusing:
            assert not iv.contains(c.allowed, t)
            assert c.reason_at(t) in ("outside_window", "team_legal_hours", "blackout_event",
                                      "state_holiday", "state_day_closed", "state_hours",
                                      "federal_hours")


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.sampled_from(STATES), min_size=1, max_size=4, unique=True),
    zones=st.lists(st.sampled_from(US_ZONES), min_size=1, max_size=3, unique=True),
    extra_code=st.sampled_from(STATES),
    extra_zone=st.sampled_from(US_ZONES),
    start=starts(),
)
def test_more_jurisdictions_or_zones_never_allow_more_and_order_does_not_matter(
    codes: list[str], zones: list[str], extra_code: str, extra_zone: str, start: datetime,
) -> None:
    scope = Scope(purpose="telemarketing")
    until = start + timedelta(days=9)

    def allowed(c: list[str], z: list[str]) -> tuple[iv.Interval, ...]:
        return compose(TABLE, jset(c, z), scope, since=start, until=until,
                       legal=LegalHours()).allowed

    base = allowed(codes, zones)
    for bigger in (allowed([*codes, extra_code], zones), allowed(codes, [*zones, extra_zone])):
        assert iv.intersect(bigger, base) == list(bigger)
    assert allowed(list(reversed(codes)), list(reversed(zones))) == base


# ---------------------------------------------------------------------- golden cases

FL = ["US", "US-FL"]


def single(codes: list[str], zones: list[str], at: datetime, *, margin: timedelta = MINUTE * 0,
           purpose: str = "telemarketing", **kw: object) -> bool:
    schedule = compose(TABLE, jset(codes, zones), Scope(purpose=purpose), since=at,
                       until=at + timedelta(days=2), margin=margin, **kw)  # type: ignore[arg-type]
    return schedule.allowed_at(at)


@pytest.mark.parametrize(("local_day", "offset"), [("2026-01-15", -5), ("2026-07-15", -4)])
def test_florida_19_59_59_allowed_20_00_00_refused_in_est_and_edt(local_day: str,
                                                                  offset: int) -> None:
    day = date.fromisoformat(local_day)
    eight_pm = datetime.combine(day, time(20), UTC) - timedelta(hours=offset)
    assert single(FL, ["America/New_York"], eight_pm - timedelta(seconds=1))
    assert not single(FL, ["America/New_York"], eight_pm)
    # With the default 2-minute margin the last start is just before 19:58:00.
    margin = timedelta(minutes=2)
    assert single(FL, ["America/New_York"], eight_pm - timedelta(minutes=2, microseconds=1),
                  margin=margin)
    assert not single(FL, ["America/New_York"], eight_pm - timedelta(minutes=2), margin=margin)
    eight_am = eight_pm - timedelta(hours=12)
    assert single(FL, ["America/New_York"], eight_am)
    assert not single(FL, ["America/New_York"], eight_am - timedelta(microseconds=1))


#: Informational calls under a team's own night window only (no shipped rule applies).
NIGHT = Scope(purpose="informational", time_rules_for_all_purposes=False)


def team_rule(days: dict[str, list[list[str]]]) -> Rule:
    (rule,) = parse_rules([{
        "id": "team/night", "jurisdiction": "US", "kind": "window", "purposes": ["informational"],
        "technologies": ["any"], "days": days, "wider_than_federal": True,
        "confidence": "verified", "effective_from": date(2020, 1, 1),
        "sources": [{"cite": "team policy", "url": "https://example.org/policy"}],
    }], TABLE)
    return rule


def test_a_window_starting_in_the_spring_forward_gap_opens_when_the_clocks_jump() -> None:
    rule = team_rule({"mon-sun": [["02:30", "04:00"]]})
    schedule = compose(TABLE, jset(["US"], ["America/New_York"]), NIGHT,
                       since=utc(2026, 3, 8, 5), until=utc(2026, 3, 8, 12), margin=timedelta(0),
                       extra_rules=[rule])
    # 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00 UTC. 02:30 does not exist: opens at 03:00.
    assert schedule.allowed == ((utc(2026, 3, 8, 7), utc(2026, 3, 8, 8)),)


def test_a_window_ending_in_the_fall_back_overlap_ends_at_the_first_occurrence() -> None:
    rule = team_rule({"mon-sun": [["00:00", "01:30"]]})
    schedule = compose(TABLE, jset(["US"], ["America/New_York"]), NIGHT,
                       since=utc(2026, 11, 1, 3), until=utc(2026, 11, 1, 9), margin=timedelta(0),
                       extra_rules=[rule])
    # 00:00 EDT = 04:00 UTC; 01:30 EDT (first occurrence) = 05:30 UTC. The second 01:00-01:30
    # (EST, 06:00-06:30 UTC) is not inside again.
    assert schedule.allowed == ((utc(2026, 11, 1, 4), utc(2026, 11, 1, 5, 30)),)


def test_phoenix_and_denver_both_plausible_in_summer() -> None:
    schedule = compose(TABLE, jset(["US", "US-AZ"], ["America/Phoenix", "America/Denver"]),
                       Scope(purpose="telemarketing"), since=utc(2026, 7, 15, 6),
                       until=utc(2026, 7, 16, 6), margin=timedelta(0))
    # 08:00 MST (Phoenix) = 15:00 UTC = 09:00 MDT; 21:00 MDT (Denver) = 03:00 UTC.
    assert schedule.allowed == ((utc(2026, 7, 15, 15), utc(2026, 7, 16, 3)),)


def test_a_split_area_keeps_the_stricter_zone_at_each_end() -> None:
    schedule = compose(TABLE, jset(FL, ["America/New_York", "America/Chicago"]),
                       Scope(purpose="telemarketing"), since=utc(2026, 1, 15, 6),
                       until=utc(2026, 1, 16, 6), margin=timedelta(0))
    # 08:00 CST = 14:00 UTC; 20:00 EST = 01:00 UTC.
    assert schedule.allowed == ((utc(2026, 1, 15, 14), utc(2026, 1, 16, 1)),)


@pytest.mark.parametrize(("day", "opens", "closes"), [
    # July: the literal "Central Standard Time" start (08:00 CST = 09:00 CDT) wins.
    ("2026-07-15", 14, 1),
    # January: CST is the local clock, 08:00-20:00.
    ("2026-01-15", 14, 2),
])
def test_mississippi_literal_central_standard_time(day: str, opens: int, closes: int) -> None:
    start = datetime.combine(date.fromisoformat(day), time(6), UTC)
    schedule = compose(TABLE, jset(["US", "US-MS"], ["America/Chicago"]),
                       Scope(purpose="telemarketing"), since=start,
                       until=start + timedelta(days=1), margin=timedelta(0))
    assert schedule.allowed == ((start.replace(hour=opens),
                                 start.replace(hour=closes) + timedelta(days=1)),)


def test_a_future_dated_rule_switches_on_at_its_date() -> None:
    # PA SB 992 (pending, from 2026-10-18): no Sunday calls, 09:00-19:00 Monday-Saturday.
    def ok(local: datetime) -> bool:
        return single(["US", "US-PA"], ["America/New_York"],
                      local.replace(tzinfo=ZoneInfo("America/New_York")).astimezone(UTC))

    assert ok(datetime(2026, 10, 17, 20, 30))       # Saturday before: 08:00-21:00
    assert ok(datetime(2026, 10, 11, 10, 0))        # a Sunday before
    assert not ok(datetime(2026, 10, 18, 10, 0))    # the first Sunday after
    assert not ok(datetime(2026, 10, 19, 19, 30))   # Monday after, past 19:00
    assert ok(datetime(2026, 10, 19, 18, 30))


def test_holiday_hours_allow_only_their_window_on_a_holiday() -> None:
    # Nebraska: prerecorded messages on legal holidays only 13:00-21:00 (Labor Day 2026-09-07).
    def ok(hour: int) -> bool:
        local = datetime(2026, 9, 7, hour, 30, tzinfo=ZoneInfo("America/Chicago"))
        return single(["US", "US-NE"], ["America/Chicago"], local.astimezone(UTC))

    assert not ok(10) and ok(13) and ok(20) and not ok(21)


def test_blackouts_apply_only_to_their_jurisdiction_and_keep_the_margin() -> None:
    start = utc(2026, 8, 3, 15)  # a Monday, 10:00 CDT
    blackout = Blackout("blk_1", "US-LA", start + timedelta(hours=2), start + timedelta(hours=5),
                        "La. R.S. 45:844.31; hurricane emergency")
    schedule = compose(TABLE, jset(["US", "US-LA"], ["America/Chicago"]),
                       Scope(purpose="telemarketing"), since=start,
                       until=start + timedelta(hours=12), blackouts=[blackout])
    assert schedule.allowed == ((start, start + timedelta(hours=2) - timedelta(minutes=2)),
                                (start + timedelta(hours=5), utc(2026, 8, 4, 0, 58)))
    assert schedule.refusing(start + timedelta(hours=3))[0].reason_at(start) == "blackout_event"
    other = compose(TABLE, jset(["US", "US-TX"], ["America/Chicago"]),
                    Scope(purpose="telemarketing"), since=start, until=start + timedelta(hours=8),
                    blackouts=[blackout])
    assert other.allowed_at(start + timedelta(hours=3))


def test_technology_scope_and_disabled_rules() -> None:
    me = jset(["US", "US-ME"], ["America/New_York"])
    saturday = datetime(2026, 3, 21, 11, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)

    def ok(scope: Scope) -> bool:
        return compose(TABLE, me, scope, since=saturday,
                       until=saturday + timedelta(hours=1)).allowed_at(saturday)

    assert not ok(Scope(purpose="telemarketing"))                      # Maine ADAD: weekdays
    assert ok(Scope(purpose="telemarketing", technology="live"))       # not an automated call
    assert ok(Scope(purpose="telemarketing", disabled_rules=frozenset({"US-ME/adad-hours"})))
    assert not ok(Scope(purpose="informational"))                      # time rules for all
    assert ok(Scope(purpose="informational", time_rules_for_all_purposes=False))


def test_composition_is_refused_without_aware_bounds() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        compose(TABLE, jset(FL, ["America/New_York"]), Scope(), since=datetime(2026, 1, 1),
                until=datetime(2026, 1, 2))
