"""Holiday calendars 2025-2027 for every state with a holiday ban, against dates written out by
hand from the statutes (research/compliance.md 1.3), plus the date arithmetic underneath."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callfleet.compliance.holidays import (
    Calendar,
    HolidayEntry,
    blocked_dates,
    calendar_year,
    easter,
    election_day,
    nth_weekday,
)
from callfleet.compliance.table import shipped_table


def d(text: str) -> date:
    return date.fromisoformat(text)


# Written by hand: actual dates, plus the observed shift of each state (AL, LA, PA, UT:
# Saturday -> Friday, Sunday -> Monday; RI: Saturday and Sunday -> Monday for its four fixed
# holidays, Sunday -> Monday for the rest; UT Juneteenth: Tuesday-Friday -> the Monday before,
# Saturday/Sunday -> the Monday after). Both the actual and the observed date are banned.
EXPECTED: dict[str, dict[int, list[str]]] = {
    "US-AL": {
        2025: ["01-01", "01-20", "02-17", "03-04", "04-28", "05-26", "06-02", "06-19",
               "07-04", "09-01", "10-13", "11-11", "11-27", "12-01", "12-25"],
        2026: ["01-01", "01-19", "02-16", "02-17", "04-27", "05-25", "06-01", "06-19",
               "07-03", "07-04", "09-07", "10-12", "11-11", "11-26", "12-01", "12-25"],
        2027: ["01-01", "01-18", "02-09", "02-15", "04-26", "05-31", "06-07", "06-18",
               "06-19", "07-04", "07-05", "09-06", "10-11", "11-11", "11-25", "12-01",
               "12-24", "12-25", "12-31"],
    },
    "US-LA": {
        2025: ["01-01", "01-08", "01-19", "01-20", "03-04", "04-18", "05-26", "07-04",
               "09-01", "11-11", "11-27", "11-28", "12-25", "12-26"],
        2026: ["01-01", "01-08", "01-19", "02-17", "04-03", "05-25", "07-03", "07-04",
               "09-07", "11-11", "11-26", "11-27", "12-25", "12-26"],
        2027: ["01-01", "01-08", "01-18", "01-19", "02-09", "03-26", "05-31", "07-04",
               "07-05", "09-06", "11-11", "11-25", "11-26", "12-24", "12-25", "12-26",
               "12-27", "12-31"],
    },
    "US-PA": {
        2025: ["01-01", "01-20", "02-17", "04-18", "05-26", "06-13", "06-14", "07-04",
               "09-01", "10-13", "11-04", "11-11", "11-27", "12-15", "12-25"],
        2026: ["01-01", "01-19", "02-16", "04-03", "05-25", "06-14", "06-15", "07-03",
               "07-04", "09-07", "10-12", "11-03", "11-11", "11-26", "12-15", "12-25"],
        2027: ["01-01", "01-18", "02-15", "03-26", "05-31", "06-14", "07-04", "07-05",
               "09-06", "10-11", "11-02", "11-11", "11-25", "12-15", "12-24", "12-25",
               "12-31"],
    },
    "US-RI": {
        2025: ["01-01", "01-20", "02-17", "05-04", "05-05", "05-26", "06-19", "07-04",
               "08-11", "09-01", "10-13", "11-11", "11-27", "12-25"],
        2026: ["01-01", "01-19", "02-16", "05-04", "05-25", "06-19", "07-04", "07-06",
               "08-10", "09-07", "10-12", "11-03", "11-11", "11-26", "12-25"],
        2027: ["01-01", "01-18", "02-15", "05-04", "05-31", "06-19", "07-04", "07-05",
               "08-09", "09-06", "10-11", "11-11", "11-25", "12-25", "12-27"],
    },
    "US-UT": {
        # Easter Sunday is a holiday from 2025-05-07, Good Friday from 2026-05-06.
        2025: ["01-01", "01-20", "02-17", "05-26", "06-16", "06-19", "07-04", "07-24",
               "09-01", "10-13", "11-11", "11-27", "12-25"],
        2026: ["01-01", "01-19", "02-16", "04-05", "05-25", "06-15", "06-19", "07-03",
               "07-04", "07-24", "09-07", "10-12", "11-11", "11-26", "12-25"],
        2027: ["01-01", "01-18", "02-15", "03-26", "03-28", "05-31", "06-19", "06-21",
               "07-04", "07-05", "07-23", "07-24", "09-06", "10-11", "11-11", "11-25",
               "12-24", "12-25", "12-31"],
    },
}


@pytest.mark.parametrize(("state", "year"),
                         [(s, y) for s in sorted(EXPECTED) for y in (2025, 2026, 2027)])
def test_holiday_calendar_matches_the_hand_written_table(state: str, year: int) -> None:
    calendar = shipped_table().calendars[state]
    got = sorted(blocked_dates(calendar, date(year, 1, 1), date(year, 12, 31)))
    assert [g.strftime("%m-%d") for g in got] == EXPECTED[state][year]


def test_the_research_examples() -> None:
    table = shipped_table()
    ri = blocked_dates(table.calendars["US-RI"], d("2026-07-01"), d("2026-07-31"))
    assert ri == {d("2026-07-04"): ("Independence Day",),
                  d("2026-07-06"): ("Independence Day (observed)",)}
    ut = blocked_dates(table.calendars["US-UT"], d("2027-07-20"), d("2027-07-31"))
    assert ut == {d("2027-07-23"): ("Pioneer Day (observed)",), d("2027-07-24"): ("Pioneer Day",)}
    al = blocked_dates(table.calendars["US-AL"], d("2026-12-01"), d("2026-12-01"))
    assert al == {d("2026-12-01"): ("Mrs. Rosa L. Parks Day",)}
    pa = blocked_dates(table.calendars["US-PA"], d("2026-06-14"), d("2026-11-03"))
    assert "Flag Day" in pa[d("2026-06-14")] and "Election Day" in pa[d("2026-11-03")]


def test_two_holidays_on_one_day_are_both_named() -> None:
    la = blocked_dates(shipped_table().calendars["US-LA"], d("2026-01-19"), d("2026-01-19"))
    assert la == {d("2026-01-19"): ("Martin Luther King Jr. Day", "Robert E. Lee Day")}


def test_an_observed_date_can_fall_in_the_previous_year() -> None:
    # 1 January 2028 is a Saturday: Utah observes it on Friday 31 December 2027.
    ut = calendar_year(shipped_table().calendars["US-UT"], 2028)
    assert ut[0].day == d("2027-12-31") and ut[0].observed


@pytest.mark.parametrize(("year", "expected"), [
    (2024, "2024-03-31"), (2025, "2025-04-20"), (2026, "2026-04-05"), (2027, "2027-03-28"),
    (2028, "2028-04-16"), (2038, "2038-04-25"), (2285, "2285-03-22"), (1818, "1818-03-22"),
])
def test_easter(year: int, expected: str) -> None:
    assert easter(year) == d(expected)


@given(st.integers(1900, 2400))
def test_easter_is_a_sunday_between_march_22_and_april_25(year: int) -> None:
    day = easter(year)
    assert day.weekday() == 6 and date(year, 3, 22) <= day <= date(year, 4, 25)


@given(st.integers(1900, 2400), st.integers(1, 12), st.integers(0, 6))
def test_nth_weekday(year: int, month: int, weekday: int) -> None:
    first = nth_weekday(year, month, weekday, 1)
    last = nth_weekday(year, month, weekday, -1)
    assert first.weekday() == last.weekday() == weekday
    assert first.month == last.month == month and first.day <= 7 and last.day > 21
    assert nth_weekday(year, month, weekday, 4).day in range(22, 29)


def test_a_fifth_weekday_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(ValueError, match="no 5th"):
        nth_weekday(2026, 2, 0, 5)


@pytest.mark.parametrize(("year", "expected"), [
    (2024, "2024-11-05"), (2025, "2025-11-04"), (2026, "2026-11-03"), (2027, "2027-11-02"),
    (2028, "2028-11-07"),
])
def test_election_day_is_the_tuesday_after_the_first_monday(year: int, expected: str) -> None:
    assert election_day(year) == d(expected)


def test_block_only_the_observed_date_and_offsets() -> None:
    cal = Calendar("X", "test", frozenset({"observed"}), (
        HolidayEntry("Fixed", fixed=(7, 4), observe={5: "prev_fri", 6: "next_mon"}),
        HolidayEntry("Day after Thanksgiving", nth_weekday=(11, 3, 4), offset_days=1),
    ))
    # Only observed dates are blocked: 2026-07-04 is a Saturday (observed Friday the 3rd);
    # the day after Thanksgiving has no observance, so nothing.
    assert list(blocked_dates(cal, d("2026-01-01"), d("2026-12-31"))) == [d("2026-07-03")]
    cal_actual = Calendar("X", "test", frozenset({"actual"}), cal.holidays)
    # 2024: Thanksgiving is 28 Nov, the day after is the 29th (the 5th Friday).
    assert d("2024-11-29") in blocked_dates(cal_actual, d("2024-11-01"), d("2024-11-30"))


def test_explicit_dates_and_effective_periods() -> None:
    cal = Calendar("X", "test", frozenset({"actual", "observed"}), (
        HolidayEntry("Proclaimed", dates=(d("2023-07-03"), d("2026-12-24"))),
        HolidayEntry("New", fixed=(3, 1), effective_from=d("2026-01-01"),
                     effective_to=d("2026-12-31")),
    ))
    got = blocked_dates(cal, d("2025-01-01"), d("2027-12-31"))
    assert list(got) == [d("2026-03-01"), d("2026-12-24")]
