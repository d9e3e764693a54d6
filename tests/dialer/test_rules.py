"""The dialer's pure rules: property tests (hypothesis) plus the cases a user would notice.

The properties pin down the compliance guarantees of SPEC sections 4 and 8 (no call outside
the window or legal hours, attempts never above the caps) for arbitrary windows, zones and
instants, including the nights clocks change; the examples pin down the behaviour users see on
specific dates.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callfleet.dialer.rules import (
    CAMPAIGN_STATUSES,
    ENROLLMENT_STATUSES,
    ENROLLMENT_TRANSITIONS,
    OUTCOMES,
    RETRYABLE_OUTCOMES,
    TRANSITIONS,
    WEEKDAYS,
    CallWindow,
    DialInput,
    InvalidTransition,
    LegalHours,
    RetryPolicy,
    after_attempt,
    caller_id_pick,
    can_transition,
    check_enrollment_transition,
    check_transition,
    effective_timezone,
    format_hhmm,
    is_dialable,
    legal_contains,
    next_allowed_time,
    next_window_open,
    parse_days,
    parse_hhmm,
    retry_delay,
    window_contains,
)

NY = "America/New_York"
LA = "America/Los_Angeles"
BERLIN = "Europe/Berlin"
ALL = frozenset(WEEKDAYS)
TICK = timedelta(microseconds=1)

# Zones chosen for their clocks: no DST, plain US/EU DST, 30-minute DST (Lord Howe),
# 45-minute offsets (Chatham), midnight transitions (Havana, Santiago), southern hemisphere,
# a half-hour offset without DST (Kolkata) and Newfoundland's -03:30.
ZONES = [
    "UTC",
    NY,
    LA,
    BERLIN,
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Havana",
    "America/Santiago",
    "America/St_Johns",
    "Australia/Sydney",
]

FAR_PAST = datetime(2025, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2027, 12, 31, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@cache
def zone_transitions() -> tuple[datetime, ...]:
    """Instants (UTC, to 6 h) in 2025-2027 near which one of ZONES changed its offset."""
    found: list[datetime] = []
    for name in ZONES:
        zone = ZoneInfo(name)
        moment = FAR_PAST
        previous = moment.astimezone(zone).utcoffset()
        while moment < FAR_FUTURE:
            moment += timedelta(hours=6)
            offset = moment.astimezone(zone).utcoffset()
            if offset != previous:
                found.append(moment)
                previous = offset
    return tuple(found)


def near_transition_in(zone_name: str, moment: datetime, within: timedelta) -> bool:
    zone = ZoneInfo(zone_name)
    probes = [moment + within * (k / 8) for k in range(-8, 9)]
    return len({p.astimezone(zone).utcoffset() for p in probes}) > 1


# ---------------------------------------------------------------- strategies

zones = st.sampled_from(ZONES)
minute_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
day_sets = st.frozensets(st.sampled_from(WEEKDAYS))


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    """Any instant in 2025-2027, or (half the time) one within 36 h of a clock change."""
    if draw(st.booleans()):
        return draw(
            st.datetimes(FAR_PAST.replace(tzinfo=None), FAR_FUTURE.replace(tzinfo=None))
        ).replace(tzinfo=UTC)
    base = draw(st.sampled_from(zone_transitions()))
    seconds = draw(st.integers(-36 * 3600, 36 * 3600))
    micro = draw(st.sampled_from([0, 0, 0, 1, 999_999]))
    return base + timedelta(seconds=seconds, microseconds=micro)


@st.composite
def windows(draw: st.DrawFn, days: st.SearchStrategy[frozenset[str]] = day_sets) -> CallWindow:
    start = draw(minute_times)
    # Bias towards interesting shapes: ordinary, spanning midnight, whole-day.
    shape = draw(st.sampled_from(["any", "any", "span", "whole"]))
    if shape == "whole":
        end = start
    elif shape == "span":
        assume(start.hour > 0)
        end = draw(st.builds(time, st.integers(0, start.hour - 1), st.integers(0, 59)))
    else:
        end = draw(minute_times)
    return CallWindow(start=start, end=end, days=draw(days), tz=draw(zones))


@st.composite
def legal_hours(draw: st.DrawFn) -> LegalHours:
    start = draw(minute_times)
    end = draw(minute_times)
    assume(start < end)
    return LegalHours(start=start, end=end)


def grid(start: datetime, stop: datetime, limit: int = 720) -> list[datetime]:
    """Instants from ``start`` (inclusive) to ``stop`` (exclusive): every minute when that is
    at most ``limit`` points, else ``limit`` evenly spread points plus the last hour by minute.
    """
    span = (stop - start).total_seconds()
    if span <= 0:
        return []
    minutes = math.ceil(span / 60)
    if minutes <= limit:
        return [start + timedelta(minutes=k) for k in range(minutes)]
    step = span / limit
    spread = [start + timedelta(seconds=step * k) for k in range(limit)]
    last_hour = [stop - timedelta(minutes=k) for k in range(1, 61)]
    return spread + last_hour


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00", time(9)),
        ("23:59", time(23, 59)),
        ("00:00:00", time(0)),
        ("17:30:15", time(17, 30, 15)),
    ],
)
def test_parse_hhmm_accepts_hh_mm_and_hh_mm_ss(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize(
    "text",
    ["24:00", "9:00", "09:60", "09:00:60", "0900", "09:00 ", "", "noon", "09:00:00:00", "٠٩:٠٠"],
)
def test_parse_hhmm_rejects_anything_else_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time"):
        parse_hhmm(text)


@given(st.builds(time, st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)))
def test_format_then_parse_round_trips(t: time) -> None:
    assert parse_hhmm(format_hhmm(t)) == t


def test_format_hhmm_is_hh_mm_for_whole_minutes() -> None:
    assert format_hhmm(time(9)) == "09:00"
    assert format_hhmm(time(17, 5, 30)) == "17:05:30"


def test_parse_days() -> None:
    assert parse_days(None) == ALL
    assert parse_days(["Mon", "TUESDAY", " fri "]) == frozenset({"mon", "tue", "fri"})
    assert parse_days(["sun", "sunday"]) == frozenset({"sun"})
    with pytest.raises(ValueError, match="at least one day"):
        parse_days([])
    with pytest.raises(ValueError, match="unknown day 'funday'"):
        parse_days(["mon", "funday"])
    with pytest.raises(TypeError):
        parse_days("mon")  # type: ignore[arg-type]


def test_bad_windows_and_legal_hours_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        CallWindow(time(9), time(17), ALL, "Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        CallWindow(time(9), time(17), ALL, "America")
    with pytest.raises(ValueError, match="unknown call window days"):
        CallWindow(time(9), time(17), frozenset({"mon", "xyz"}), NY)
    with pytest.raises(ValueError, match="legal calling hours"):
        LegalHours(time(21), time(8))
    with pytest.raises(ValueError, match="legal calling hours"):
        LegalHours(time(8), time(8))
    with pytest.raises(ValueError, match="timezone-aware"):
        window_contains(CallWindow(time(9), time(17), ALL, NY), datetime(2026, 3, 2, 12))


# ---------------------------------------------------------------- windows: properties


@FAST
@given(window=windows(), now=instants())
def test_next_window_open_is_the_first_instant_inside(window: CallWindow, now: datetime) -> None:
    opens = next_window_open(window, now)
    if not window.days:
        assert opens is None
        assert not window_contains(window, now)
        return
    # Every non-empty window opens at least once a week, well within the 14-day horizon.
    assert opens is not None
    assert opens >= now
    assert window_contains(window, opens)
    if opens > now:
        assert not window_contains(window, opens - TICK)
    for moment in grid(now, opens):
        assert not window_contains(window, moment), moment


@FAST
@given(window=windows(), now=instants())
def test_window_matches_wall_clock_reading_away_from_clock_changes(
    window: CallWindow, now: datetime
) -> None:
    """Away from DST changes a window is exactly the plain wall-clock rule of SPEC 4.4."""
    assume(not near_transition_in(window.tz, now, timedelta(days=2)))
    local = now.astimezone(ZoneInfo(window.tz))
    t = local.time().replace(tzinfo=None)
    today = WEEKDAYS[local.weekday()] in window.days
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7] in window.days
    if window.start < window.end:
        expected = today and window.start <= t <= window.end
    elif window.start > window.end:
        expected = (today and t >= window.start) or (yesterday and t <= window.end)
    else:
        expected = (today and t >= window.start) or (yesterday and t < window.start)
    assert window_contains(window, now) is expected


@settings(max_examples=60, deadline=None)
@given(window=windows(days=st.sampled_from(WEEKDAYS).map(lambda d: frozenset({d}))), now=instants())
def test_a_window_is_open_about_as_long_as_its_wall_clock_length(
    window: CallWindow, now: datetime
) -> None:
    """Each opening lasts its wall-clock length, give or take the clock change (at most
    the largest DST shift, 1 h): a window never vanishes or doubles on a DST night.
    One day per week, so consecutive openings cannot run into each other."""
    opens = next_window_open(window, now)
    assert opens is not None
    assume(opens > now)  # measure a whole opening, not the rest of the current one
    wall = (
        datetime.combine(opens.date(), window.end) - datetime.combine(opens.date(), window.start)
    ).total_seconds() % 86400 or 86400
    # Walk forward in 5-minute steps until the window closes.
    moment, step = opens, timedelta(minutes=5)
    while window_contains(window, moment + step):
        moment += step
        if moment - opens > timedelta(hours=26):
            break
    open_for = (moment - opens).total_seconds()
    # "Inclusive end" adds the end instant itself; clock changes shift by at most one hour.
    assert abs(open_for - wall) <= 3600 + 300, (opens, open_for, wall)


# ---------------------------------------------------------------- windows: examples


def test_window_end_is_inclusive_to_the_instant() -> None:
    window = CallWindow(time(9), time(17), ALL, "UTC")
    assert window_contains(window, utc(2026, 3, 2, 9, 0))
    assert window_contains(window, utc(2026, 3, 2, 17, 0))
    assert not window_contains(window, utc(2026, 3, 2, 17, 0, 1))
    assert not window_contains(window, utc(2026, 3, 2, 8, 59, 59))


def test_window_spanning_midnight_belongs_to_the_day_it_opened() -> None:
    # 2026-03-02 is a Monday.
    window = CallWindow(time(22), time(2), frozenset({"mon"}), "UTC")
    assert window_contains(window, utc(2026, 3, 2, 22, 0))  # Monday 22:00
    assert window_contains(window, utc(2026, 3, 3, 1, 30))  # Tuesday 01:30, Monday's window
    assert window_contains(window, utc(2026, 3, 3, 2, 0))  # end inclusive
    assert not window_contains(window, utc(2026, 3, 3, 2, 0, 1))
    assert not window_contains(window, utc(2026, 3, 2, 1, 30))  # Monday 01:30 is Sunday's
    assert not window_contains(window, utc(2026, 3, 3, 22, 30))  # Tuesday evening
    assert next_window_open(window, utc(2026, 3, 3, 3, 0)) == utc(2026, 3, 9, 22, 0)


def test_day_filter_waits_for_the_next_selected_day() -> None:
    weekdays = CallWindow(time(9), time(17), parse_days(["mon", "tue", "wed", "thu", "fri"]), NY)
    saturday_morning = utc(2026, 3, 14, 15, 0)  # Sat 11:00 EDT
    assert not window_contains(weekdays, saturday_morning)
    assert next_window_open(weekdays, saturday_morning) == utc(2026, 3, 16, 13, 0)  # Mon 09:00


def test_whole_day_window_with_start_equal_to_end() -> None:
    every_day = CallWindow(time(0), time(0), ALL, NY)
    for hour in range(24):
        assert window_contains(every_day, utc(2026, 3, 8, hour, 17))
    mondays = CallWindow(time(0), time(0), frozenset({"mon"}), "UTC")
    assert window_contains(mondays, utc(2026, 3, 2, 23, 59, 59))
    assert not window_contains(mondays, utc(2026, 3, 3, 0, 0))  # 24 h, half-open


def test_no_days_never_opens() -> None:
    never = CallWindow(time(9), time(17), frozenset(), NY)
    assert next_window_open(never, utc(2026, 1, 1)) is None
    assert next_allowed_time(never, LegalHours(), NY, utc(2026, 1, 1)) is None


def test_new_york_spring_forward_2026_03_08() -> None:
    # Clocks jump 02:00 EST -> 03:00 EDT at 07:00 UTC; 02:xx does not exist that night.
    nine_to_five = CallWindow(time(9), time(17), ALL, NY)
    assert next_window_open(nine_to_five, utc(2026, 3, 7, 23)) == utc(2026, 3, 8, 13)  # 09:00 EDT
    assert next_window_open(nine_to_five, utc(2026, 3, 6, 23)) == utc(2026, 3, 7, 14)  # 09:00 EST

    in_the_gap = CallWindow(time(2, 30), time(5), ALL, NY)
    # A start that does not exist opens at the first valid instant after it: 03:00 EDT.
    assert next_window_open(in_the_gap, utc(2026, 3, 8, 5)) == utc(2026, 3, 8, 7)
    assert not window_contains(in_the_gap, utc(2026, 3, 8, 7) - TICK)
    assert window_contains(in_the_gap, utc(2026, 3, 8, 7))

    overnight = CallWindow(time(22), time(6), frozenset({"sat"}), NY)
    # Sat 22:00 EST -> Sun 06:00 EDT is one hour shorter: 7 h of real time.
    assert next_window_open(overnight, utc(2026, 3, 7, 12)) == utc(2026, 3, 8, 3)
    assert window_contains(overnight, utc(2026, 3, 8, 10))  # 06:00 EDT
    assert not window_contains(overnight, utc(2026, 3, 8, 10, 0, 1))


def test_new_york_fall_back_2026_11_01() -> None:
    # Clocks go back 02:00 EDT -> 01:00 EST at 06:00 UTC; 01:xx happens twice.
    from_one_thirty = CallWindow(time(1, 30), time(5), ALL, NY)
    # An ambiguous start opens at its first occurrence (01:30 EDT = 05:30 UTC) ...
    assert next_window_open(from_one_thirty, utc(2026, 11, 1, 4)) == utc(2026, 11, 1, 5, 30)
    # ... and the window stays open through the repeated hour (01:15 EST is inside).
    assert window_contains(from_one_thirty, utc(2026, 11, 1, 6, 15))
    assert window_contains(from_one_thirty, utc(2026, 11, 1, 10))  # 05:00 EST
    assert not window_contains(from_one_thirty, utc(2026, 11, 1, 10, 0, 1))

    until_one_thirty = CallWindow(time(22), time(1, 30), frozenset({"sat"}), NY)
    # An ambiguous end is also its first occurrence: closed during the repeated 01:xx.
    assert window_contains(until_one_thirty, utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert not window_contains(until_one_thirty, utc(2026, 11, 1, 6, 15))  # 01:15 EST

    nine_to_five = CallWindow(time(9), time(17), ALL, NY)
    assert next_window_open(nine_to_five, utc(2026, 10, 31, 22)) == utc(2026, 11, 1, 14)  # EST


def test_berlin_clock_changes_2026() -> None:
    # Spring: 02:00 CET -> 03:00 CEST at 01:00 UTC on 2026-03-29.
    early = CallWindow(time(2, 15), time(4), ALL, BERLIN)
    assert next_window_open(early, utc(2026, 3, 28, 23)) == utc(2026, 3, 29, 1)
    office = CallWindow(time(9), time(18), parse_days(["sun"]), BERLIN)
    assert next_window_open(office, utc(2026, 3, 28, 23)) == utc(2026, 3, 29, 7)  # 09:00 CEST
    # Autumn: 03:00 CEST -> 02:00 CET at 01:00 UTC on 2026-10-25; 02:xx happens twice.
    night = CallWindow(time(2, 30), time(3), ALL, BERLIN)
    assert next_window_open(night, utc(2026, 10, 24, 22)) == utc(2026, 10, 25, 0, 30)
    # 02:45 CET (the second 02:45) is still inside: the window closes at 03:00 CET.
    assert window_contains(night, utc(2026, 10, 25, 1, 45))
    assert window_contains(night, utc(2026, 10, 25, 2, 0))
    assert not window_contains(night, utc(2026, 10, 25, 2, 0, 1))


def test_thirty_minute_gap_on_lord_howe() -> None:
    # Lord Howe springs forward 02:00 -> 02:30 on 2025-10-05 (15:30 UTC the day before).
    window = CallWindow(time(2, 15), time(4), ALL, "Australia/Lord_Howe")
    assert next_window_open(window, utc(2025, 10, 4, 12)) == utc(2025, 10, 4, 15, 30)


# ---------------------------------------------------------------- legal hours + windows


def test_legal_hours_default_us_rule_in_recipient_time() -> None:
    legal = LegalHours()
    assert legal_contains(legal, LA, utc(2026, 3, 2, 16))  # 08:00 PST
    assert not legal_contains(legal, LA, utc(2026, 3, 2, 15, 59))
    assert legal_contains(legal, LA, utc(2026, 3, 3, 5))  # 21:00 PST inclusive
    assert not legal_contains(legal, LA, utc(2026, 3, 3, 5, 0, 1))


def test_next_allowed_time_respects_both_zones() -> None:
    # Campaign says 06:00-23:00 New York; legal says 08:00-21:00 in Los Angeles.
    window = CallWindow(time(6), time(23), ALL, NY)
    start = next_allowed_time(window, LegalHours(), LA, utc(2026, 3, 3, 10))  # 05:00 EST
    assert start == utc(2026, 3, 3, 16)  # 08:00 PST = 11:00 EST
    # A window entirely outside legal hours never allows a call.
    late = CallWindow(time(22), time(23), ALL, NY)
    assert next_allowed_time(late, LegalHours(), NY, utc(2026, 3, 3)) is None


@settings(max_examples=80, deadline=None)
@given(
    window=windows(days=st.frozensets(st.sampled_from(WEEKDAYS), min_size=1)),
    legal=legal_hours(),
    contact_tz=zones,
    now=instants(),
)
def test_next_allowed_time_is_the_first_instant_inside_both(
    window: CallWindow, legal: LegalHours, contact_tz: str, now: datetime
) -> None:
    def both(moment: datetime) -> bool:
        return window_contains(window, moment) and legal_contains(legal, contact_tz, moment)

    allowed = next_allowed_time(window, legal, contact_tz, now)
    if allowed is None:
        # Window and legal bounds are whole minutes and so is every zone offset, so any
        # overlap contains a whole minute. Visit every whole legal minute of the next 8 days
        # (the week repeats; the horizon is 14 days), jumping over the hours legal hours are
        # closed, and check none of them is inside the window.
        legal_window = CallWindow(legal.start, legal.end, ALL, contact_tz)
        assert not both(now)
        moment: datetime | None = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = now + timedelta(days=8)
        while moment is not None and moment < end:
            moment = next_window_open(legal_window, moment)
            assert moment is not None
            assert not window_contains(window, moment), moment
            moment += timedelta(minutes=1)
        return
    assert allowed >= now
    assert both(allowed)
    if allowed > now:
        assert not both(allowed - TICK)
    for moment in grid(now, allowed, limit=300):
        assert not both(moment)


# ---------------------------------------------------------------- effective timezone


def test_effective_timezone_sources() -> None:
    kw = {"campaign_tz": NY}
    assert effective_timezone(
        contact_tz="Europe/Paris", phone="+14155550123", use_contact_timezone=True, **kw
    ) == ("Europe/Paris", "contact")
    # Contact zone not used: the phone number's zone, when it implies exactly one.
    assert effective_timezone(
        contact_tz="Europe/Paris", phone="+14155550123", use_contact_timezone=False, **kw
    ) == (LA, "phone")
    assert effective_timezone(
        contact_tz=None, phone="+14155550123", use_contact_timezone=True, **kw
    ) == (LA, "phone")
    assert effective_timezone(
        contact_tz=None, phone="+442079460000", use_contact_timezone=True, **kw
    ) == ("Europe/London", "phone")
    # Toll-free +1 800 maps to dozens of zones: no inference, campaign zone.
    assert effective_timezone(
        contact_tz=None, phone="+18005550123", use_contact_timezone=True, **kw
    ) == (NY, "campaign")
    for phone in (None, "", "not a number", "4155550123", "+15555550100"):
        assert effective_timezone(
            contact_tz=None, phone=phone, use_contact_timezone=True, **kw
        ) == (NY, "campaign")
    # A broken contact zone falls back instead of crashing the dialer.
    assert effective_timezone(
        contact_tz="Not/AZone", phone="+442079460000", use_contact_timezone=True, **kw
    ) == ("Europe/London", "phone")


# ---------------------------------------------------------------- is_dialable


def dial_input(**overrides: object) -> DialInput:
    values: dict[str, object] = {
        "campaign_status": "running",
        "campaign_deleted": False,
        "enrollment_status": "pending",
        "next_attempt_at": None,
        "phone": "+14155550123",
        "do_not_call": False,
        "lead_status": "new",
        "on_team_dnc": False,
        "window": CallWindow(time(9), time(17), ALL, LA),
        "legal": LegalHours(),
        "contact_tz": LA,
        "campaign_active_calls": 0,
        "max_concurrent_calls": 3,
        "team_active_calls": 0,
        "team_max_concurrent": 10,
    }
    values.update(overrides)
    return DialInput(**values)  # type: ignore[arg-type]


NOON_LA = utc(2026, 3, 2, 20)  # Monday 12:00 PST


def test_is_dialable_ok() -> None:
    assert is_dialable(dial_input(), NOON_LA).ok


@pytest.mark.parametrize(
    ("overrides", "reason", "permanent"),
    [
        ({"campaign_status": "paused"}, "campaign_not_running", False),
        ({"campaign_deleted": True}, "campaign_not_running", False),
        ({"enrollment_status": "calling"}, "not_pending", False),
        ({"phone": None}, "no_phone", True),
        ({"phone": "  "}, "no_phone", True),
        ({"do_not_call": True}, "do_not_call", True),
        ({"lead_status": "do_not_contact"}, "do_not_contact", True),
        ({"on_team_dnc": True}, "team_dnc", True),
        ({"campaign_active_calls": 3}, "campaign_concurrency", False),
        ({"team_active_calls": 10}, "team_concurrency", False),
    ],
)
def test_is_dialable_refusals(overrides: dict[str, object], reason: str, permanent: bool) -> None:
    decision = is_dialable(dial_input(**overrides), NOON_LA)
    assert (decision.ok, decision.reason, decision.permanent) == (False, reason, permanent)
    assert decision.next_time is None


def test_not_due_says_when() -> None:
    due = NOON_LA + timedelta(hours=2)
    decision = is_dialable(dial_input(next_attempt_at=due), NOON_LA)
    assert (decision.reason, decision.next_time) == ("not_due", due)
    # The database hands back naive UTC on SQLite; it is read as UTC.
    naive = is_dialable(dial_input(next_attempt_at=due.replace(tzinfo=None)), NOON_LA)
    assert (naive.reason, naive.next_time) == ("not_due", due)
    assert is_dialable(dial_input(next_attempt_at=NOON_LA), NOON_LA).ok


def test_compliance_is_checked_before_capacity() -> None:
    full = {"campaign_active_calls": 3, "team_active_calls": 10}
    assert is_dialable(dial_input(do_not_call=True, **full), NOON_LA).reason == "do_not_call"
    night = utc(2026, 3, 3, 8)  # 00:00 PST
    assert is_dialable(dial_input(**full), night).reason == "outside_window"


def test_outside_window_and_legal_hours_say_when() -> None:
    evening = utc(2026, 3, 3, 3)  # Monday 19:00 PST
    decision = is_dialable(dial_input(), evening)
    assert decision.reason == "outside_window"
    assert decision.next_time == utc(2026, 3, 3, 17)  # Tuesday 09:00 PST
    # Window allows 06:00 but legal hours start at 08:00 recipient time.
    early = dial_input(window=CallWindow(time(6), time(22), ALL, LA))
    decision = is_dialable(early, utc(2026, 3, 3, 14, 30))  # 06:30 PST
    assert decision.reason == "outside_legal_hours"
    assert decision.next_time == utc(2026, 3, 3, 16)  # 08:00 PST
    assert not decision.permanent


@st.composite
def dial_inputs(draw: st.DrawFn) -> DialInput:
    window = draw(windows())
    return DialInput(
        campaign_status=draw(st.sampled_from([*CAMPAIGN_STATUSES, "running", "running"])),
        campaign_deleted=draw(st.booleans()) and draw(st.booleans()),
        enrollment_status=draw(st.sampled_from([*ENROLLMENT_STATUSES, "pending", "pending"])),
        next_attempt_at=draw(st.none() | instants()),
        phone=draw(st.sampled_from(["+14155550123", "+442079460000", None])),
        do_not_call=draw(st.booleans()) and draw(st.booleans()),
        lead_status=draw(st.sampled_from(["new", "contacted", "do_not_contact"])),
        on_team_dnc=draw(st.booleans()) and draw(st.booleans()),
        window=window,
        legal=draw(st.just(LegalHours()) | legal_hours()),
        contact_tz=draw(st.just(window.tz) | zones),
        campaign_active_calls=draw(st.integers(0, 4)),
        max_concurrent_calls=draw(st.integers(1, 4)),
        team_active_calls=draw(st.integers(0, 12)),
        team_max_concurrent=draw(st.integers(1, 12)),
    )


@settings(max_examples=300, deadline=None)
@given(d=dial_inputs(), now=instants())
def test_a_dialable_contact_is_always_inside_window_and_legal_hours(
    d: DialInput, now: datetime
) -> None:
    decision = is_dialable(d, now)
    if decision.ok:
        assert legal_contains(d.legal, d.contact_tz, now)
        assert window_contains(d.window, now)
        assert not (d.do_not_call or d.on_team_dnc or d.lead_status == "do_not_contact")
        assert d.phone
        assert d.campaign_status == "running" and not d.campaign_deleted
        assert d.campaign_active_calls < d.max_concurrent_calls
        assert d.team_active_calls < d.team_max_concurrent
        assert decision.reason is None and decision.next_time is None
        return
    assert decision.permanent == (
        decision.reason in {"no_phone", "do_not_call", "do_not_contact", "team_dnc"}
    )
    if decision.reason in ("outside_window", "outside_legal_hours") and decision.next_time:
        # Asking again at the suggested time finds the contact inside both.
        assert decision.next_time > now
        later = is_dialable(d, decision.next_time)
        assert later.reason not in ("outside_window", "outside_legal_hours")
    if decision.reason == "not_due":
        assert decision.next_time is not None and decision.next_time > now


# ---------------------------------------------------------------- after an attempt

NOW = utc(2026, 3, 2, 12)


def test_terminal_outcomes() -> None:
    policy = RetryPolicy()
    answered = after_attempt("answered", 1, {"answered": 1}, policy, NOW)
    assert (answered.enrollment_status, answered.reason) == ("completed", "answered")
    opted = after_attempt("opted_out", 1, {"opted_out": 1}, policy, NOW)
    assert (opted.enrollment_status, opted.contact_do_not_call) == ("completed", True)
    declined = after_attempt("declined", 1, {"declined": 1}, policy, NOW)
    assert (declined.enrollment_status, declined.contact_do_not_call) == ("completed", False)
    invalid = after_attempt("invalid_number", 1, {"invalid_number": 1}, policy, NOW)
    assert (invalid.enrollment_status, invalid.reason) == ("failed", "invalid_number")
    for result in (answered, opted, declined, invalid):
        assert result.next_attempt_at is None
    with pytest.raises(ValueError, match="unknown call outcome"):
        after_attempt("exploded", 1, {}, policy, NOW)


def test_retry_delays_per_outcome_and_caps() -> None:
    policy = RetryPolicy(
        max_attempts=5,
        base_delay_minutes=60,
        delay_overrides={"busy": 10},
        attempt_caps={"voicemail": 2},
    )
    busy = after_attempt("busy", 1, {"busy": 1}, policy, NOW)
    assert (busy.enrollment_status, busy.reason) == ("pending", "retry_busy")
    assert busy.next_attempt_at == NOW + timedelta(minutes=10)
    no_answer = after_attempt("no_answer", 1, {"no_answer": 1}, policy, NOW)
    assert no_answer.next_attempt_at == NOW + timedelta(minutes=60)
    first_vm = after_attempt("voicemail", 1, {"voicemail": 1}, policy, NOW)
    assert first_vm.enrollment_status == "pending"
    second_vm = after_attempt("voicemail", 3, {"voicemail": 2, "busy": 1}, policy, NOW)
    assert (second_vm.enrollment_status, second_vm.reason) == ("failed", "cap_voicemail")
    last = after_attempt("no_answer", 5, {"no_answer": 5}, policy, NOW)
    assert (last.enrollment_status, last.reason) == ("failed", "max_attempts")


def test_errors_retry_only_when_retry_on_error() -> None:
    retried = after_attempt("failed", 1, {"failed": 1}, RetryPolicy(), NOW)
    assert retried.enrollment_status == "pending"
    stopped = after_attempt("failed", 1, {"failed": 1}, RetryPolicy(retry_on_error=False), NOW)
    assert (stopped.enrollment_status, stopped.reason) == ("failed", "error_no_retry")


def test_exponential_backoff_example() -> None:
    policy = RetryPolicy(
        max_attempts=10, base_delay_minutes=30, backoff="exponential", max_delay_minutes=200
    )
    delays = [retry_delay("busy", n, policy) for n in range(1, 6)]
    assert delays == [timedelta(minutes=m) for m in (30, 60, 120, 200, 200)]


def test_invalid_retry_policies_are_refused() -> None:
    bad: list[dict[str, Any]] = [
        {"max_attempts": 0},
        {"base_delay_minutes": -1},
        {"delay_overrides": {"answered": 5}},
        {"attempt_caps": {"busy": 0}},
        {"backoff": "fibonacci"},
        {"multiplier": 0.5},
        {"multiplier": math.nan},
        {"max_delay_minutes": -5},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs)


retryable = st.sampled_from(RETRYABLE_OUTCOMES)


@st.composite
def retry_policies(draw: st.DrawFn) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=draw(st.integers(1, 8)),
        base_delay_minutes=draw(st.integers(0, 24 * 60)),
        delay_overrides=draw(st.none() | st.dictionaries(retryable, st.integers(0, 600))),
        attempt_caps=draw(st.none() | st.dictionaries(retryable, st.integers(1, 6))),
        retry_on_error=draw(st.booleans()),
        backoff=draw(st.sampled_from(["fixed", "exponential"])),
        multiplier=draw(st.floats(1.0, 10.0)),
        max_delay_minutes=draw(st.none() | st.integers(0, 7 * 24 * 60)),
    )


@FAST
@given(policy=retry_policies(), outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=1))
def test_attempts_never_exceed_max_or_per_outcome_caps(
    policy: RetryPolicy, outcomes: list[str]
) -> None:
    """Simulate an enrollment through a sequence of outcomes until it is final."""
    counts: Counter[str] = Counter()
    attempts = 0
    now = NOW
    result = None
    for outcome in outcomes:
        attempts += 1
        counts[outcome] += 1
        result = after_attempt(outcome, attempts, dict(counts), policy, now)
        assert attempts <= policy.max_attempts
        for capped, cap in (policy.attempt_caps or {}).items():
            assert counts[capped] <= cap
        if result.enrollment_status != "pending":
            break
        assert result.next_attempt_at is not None and result.next_attempt_at >= now
        now = result.next_attempt_at
    assert result is not None
    assert result.enrollment_status in {"pending", "completed", "failed"}
    assert result.contact_do_not_call == (result.reason == "opted_out")
    if result.enrollment_status == "pending":
        assert attempts < policy.max_attempts


@FAST
@given(policy=retry_policies(), outcome=retryable)
def test_delays_are_monotone_and_capped(policy: RetryPolicy, outcome: str) -> None:
    delays = [retry_delay(outcome, n, policy) for n in range(1, 40)]
    assert all(a <= b for a, b in itertools.pairwise(delays))
    base = (policy.delay_overrides or {}).get(outcome, policy.base_delay_minutes)
    cap = policy.max_delay_minutes
    for n, delay in enumerate(delays, start=1):
        minutes = delay.total_seconds() / 60
        if cap is not None:
            assert minutes <= cap + 1e-6
        growth = policy.multiplier ** (n - 1) if policy.backoff == "exponential" else 1.0
        expected = min(base * growth, cap if cap is not None else math.inf, 30 * 24 * 60)
        assert minutes == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------- status machines

EVERY_CAMPAIGN_PAIR = [(a, b) for a in [*CAMPAIGN_STATUSES, "bogus"] for b in CAMPAIGN_STATUSES]


@pytest.mark.parametrize(("src", "dst"), EVERY_CAMPAIGN_PAIR)
def test_campaign_transitions_match_the_table(src: str, dst: str) -> None:
    allowed = dst in TRANSITIONS.get(src, frozenset())
    assert can_transition(src, dst) is allowed
    if allowed:
        check_transition(src, dst)
    else:
        with pytest.raises(InvalidTransition, match=f"cannot move a campaign from {src} to {dst}"):
            check_transition(src, dst)


def test_campaign_lifecycle_shape() -> None:
    assert set(TRANSITIONS) == set(CAMPAIGN_STATUSES)
    assert TRANSITIONS["completed"] == TRANSITIONS["cancelled"] == frozenset()
    for src in CAMPAIGN_STATUSES:
        assert not can_transition(src, src)
    # The SPEC's path draft -> scheduled -> running <-> paused -> cancelled, and completion.
    for src, dst in [
        ("draft", "scheduled"),
        ("draft", "running"),
        ("scheduled", "running"),
        ("running", "paused"),
        ("paused", "running"),
        ("running", "completed"),
        ("paused", "cancelled"),
    ]:
        assert can_transition(src, dst)
    assert issubclass(InvalidTransition, ValueError)


@pytest.mark.parametrize(
    ("src", "dst"), [(a, b) for a in ENROLLMENT_STATUSES for b in ENROLLMENT_STATUSES]
)
def test_enrollment_transitions_match_the_table(src: str, dst: str) -> None:
    if dst in ENROLLMENT_TRANSITIONS[src]:
        check_enrollment_transition(src, dst)
    else:
        with pytest.raises(InvalidTransition, match=f"from {src} to {dst}"):
            check_enrollment_transition(src, dst)


def test_every_enrollment_can_end_and_terminal_states_stay() -> None:
    terminal = {s for s, exits in ENROLLMENT_TRANSITIONS.items() if not exits}
    assert terminal == {"completed", "failed", "skipped", "cancelled"}
    for status in ENROLLMENT_STATUSES:
        seen, frontier = {status}, [status]
        while frontier:
            for nxt in ENROLLMENT_TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & terminal


# ---------------------------------------------------------------- caller ID

NUMBERS = [
    ("pn_sf", "+14155550100"),
    ("pn_nyc", "+12125550100"),
    ("pn_ldn", "+442079460000"),
    ("pn_ber", "+4930901820"),
]


def test_caller_id_empty_list() -> None:
    assert caller_id_pick("cc_1", [], "+14155550123") is None


def test_caller_id_prefers_local_presence() -> None:
    for i in range(50):
        enrollment = f"cc_{i}"
        assert caller_id_pick(enrollment, NUMBERS, "+14155559999") == "pn_sf"  # same area code
        # No number with the contact's area code: one from the same country (+1).
        assert caller_id_pick(enrollment, NUMBERS, "+16465550123") in {"pn_sf", "pn_nyc"}
        assert caller_id_pick(enrollment, NUMBERS, "+442071234567") == "pn_ldn"
        # No number in the contact's country, or no usable phone: any number.
        assert caller_id_pick(enrollment, NUMBERS, "+33123456789") in dict(NUMBERS)
        assert caller_id_pick(enrollment, NUMBERS, None) in dict(NUMBERS)
    two_local = [*NUMBERS, ("pn_sf2", "+14155550199")]
    picks = Counter(caller_id_pick(f"cc_{i}", two_local, "+14155559999") for i in range(2000))
    assert set(picks) == {"pn_sf", "pn_sf2"}
    assert min(picks.values()) > 850


def test_caller_id_spreads_evenly() -> None:
    numbers = [(f"pn_{k}", f"+1212555{k:04d}") for k in range(7)]
    picks = Counter(caller_id_pick(f"cc_{i:06d}", numbers, None) for i in range(10_000))
    expected = 10_000 / len(numbers)
    chi_square = sum((picks[n] - expected) ** 2 / expected for n, _ in numbers)
    # 6 degrees of freedom: the 99.9th percentile is 22.5; stable hashing keeps this exact.
    assert chi_square < 22.5, picks


@FAST
@given(
    enrollment=st.text(min_size=1, max_size=30),
    numbers=st.lists(
        st.tuples(st.text(min_size=1, max_size=8), st.sampled_from([e for _, e in NUMBERS])),
        min_size=1,
        max_size=6,
        unique_by=lambda n: n[0],
    ),
    contact=st.sampled_from([None, "+14155550123", "+442079460001", "+33123456789", "junk"]),
    data=st.data(),
)
def test_caller_id_is_stable_and_survives_losing_other_numbers(
    enrollment: str,
    numbers: list[tuple[str, str]],
    contact: str | None,
    data: st.DataObject,
) -> None:
    pick = caller_id_pick(enrollment, numbers, contact)
    assert pick in {n for n, _ in numbers}
    # Same answer on retry and whatever order the numbers are listed in.
    assert caller_id_pick(enrollment, numbers, contact) == pick
    shuffled = data.draw(st.permutations(numbers))
    assert caller_id_pick(enrollment, shuffled, contact) == pick
    # Another number going inactive never moves this enrollment: its number keeps its tier
    # and its score, and the tier can only shrink (rendezvous hashing).
    others = [n for n in numbers if n[0] != pick]
    if others:
        gone = data.draw(st.sampled_from(others))
        remaining = [n for n in numbers if n != gone]
        assert caller_id_pick(enrollment, remaining, contact) == pick
