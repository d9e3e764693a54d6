"""The shipped rule table loads and every rule is cited; the loader refuses anything it does not
understand (this is the CI check of the table)."""

from __future__ import annotations

import copy
import hashlib
import tomllib
from datetime import date, time
from importlib import resources
from typing import Any

import pytest

from callfleet.compliance.table import (
    CONFIDENCES,
    TableError,
    load_table,
    parse_rules,
    parse_table,
    shipped_table,
)

RAW = resources.files("callfleet.compliance").joinpath("rules", "us.toml").read_bytes()


def base() -> dict[str, Any]:
    return copy.deepcopy(tomllib.loads(RAW.decode()))


def rule(**overrides: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "id": "US-FL/extra", "jurisdiction": "US-FL", "kind": "window",
        "purposes": ["telemarketing"], "technologies": ["any"],
        "days": {"mon-sun": [["09:00", "20:00"]]}, "confidence": "verified",
        "effective_from": date(2026, 1, 1),
        "sources": [{"cite": "test", "url": "https://example.org/x"}],
    }
    r.update(overrides)
    return r


def errors_of(data: dict[str, Any]) -> str:
    with pytest.raises(TableError) as info:
        parse_table(data, "0" * 64)
    return "; ".join(info.value.errors)


def test_the_shipped_table_loads_with_its_version_and_digest() -> None:
    table = shipped_table()
    assert table.ruleset == "us" and table.version == "2026.12.1"
    assert table.sha256 == hashlib.sha256(RAW).hexdigest()
    assert len(table.rules) > 50 and {"US", "US-FL", "US-RI", "US-TX"} <= set(table.jurisdictions)


def test_every_shipped_rule_is_cited_dated_and_marked() -> None:
    table = shipped_table()
    for r in table.rules:
        assert r.sources and all(s.url.startswith("https://") and s.cite for s in r.sources)
        assert r.confidence in CONFIDENCES
        assert r.effective_from is not None, r.id
        assert r.id.startswith(f"{r.jurisdiction}/")


def test_the_issue_examples_are_in_the_table() -> None:
    table = shipped_table()

    def hours(rule_id: str) -> list[list[tuple[time, time]]]:
        r = table.rule(rule_id)
        assert r is not None and r.days is not None
        return [list(d) for d in r.days]

    eight_pm = [(time(8), time(20))]
    for state in ("FL", "OK", "MD", "WA", "MA"):
        assert hours(f"US-{state}/hours") == [eight_pm] * 7
    for state in ("AL", "LA", "MS"):
        assert hours(f"US-{state}/hours") == [eight_pm] * 6 + [[]]
    assert hours("US-CT/hours") == [[(time(9), time(20))]] * 7
    assert hours("US-TX/hours") == [[(time(9), time(21))]] * 6 + [[(time(12), time(21))]]
    assert hours("US-RI/hours") == [[(time(9), time(18))]] * 5 + [[(time(10), time(17))], []]
    assert hours("US-UT/hours")[6] == []
    for state in ("AL", "LA", "PA", "RI", "UT"):
        assert table.rule(f"US-{state}/holidays") is not None
    for state in ("FL", "OK", "MD"):
        cap = table.rule(f"US-{state}/cap")
        assert cap is not None and (cap.max_calls, cap.per_hours) == (3, 24)
    assert {c for c, j in table.jurisdictions.items() if j.area_code_presumption} == {
        "US-FL", "US-OK", "US-CT"}
    assert table.rule("US-LA/emergency") is not None  # the blackout hook


def test_the_loader_reads_bytes_and_reports_bad_toml() -> None:
    assert load_table(RAW).version == shipped_table().version
    with pytest.raises(TableError, match="not valid TOML"):
        load_table(b"rules = [")


BAD: list[tuple[str, Any, str]] = [
    ("unknown top-level key", lambda t: t.update(extra=1), "unknown key 'extra'"),
    ("bad version", lambda t: t.update(version="v1"), "version"),
    ("unknown rule key", lambda t: t["rules"].append(rule(colour="red")),
     "unknown key 'colour'"),
    ("bad time", lambda t: t["rules"].append(rule(days={"mon-sun": [["9:00", "20:00"]]})),
     "invalid time '9:00'"),
    ("seconds", lambda t: t["rules"].append(rule(days={"mon-sun": [["09:00:30", "20:00"]]})),
     "whole minutes"),
    ("start after end", lambda t: t["rules"].append(rule(days={"mon-sun": [["20:00", "09:00"]]})),
     "must start before it ends"),
    ("overlapping ranges",
     lambda t: t["rules"].append(rule(days={"mon-sun": [["09:00", "12:00"], ["11:00", "13:00"]]})),
     "time ranges overlap"),
    ("day twice", lambda t: t["rules"].append(rule(days={"mon-sun": [], "fri": []})),
     "fri is listed more than once"),
    ("day missing", lambda t: t["rules"].append(rule(days={"mon-fri": [["09:00", "17:00"]]})),
     "missing ['sat', 'sun']"),
    ("backwards range", lambda t: t["rules"].append(rule(days={"sun-mon": []})),
     "runs backwards"),
    ("wider than federal",
     lambda t: t["rules"].append(rule(days={"mon-sun": [["07:00", "20:00"]]})),
     "outside the federal 08:00-21:00"),
    ("contradictory windows",
     lambda t: t["rules"].append(rule(days={"mon-sun": [["20:00", "21:00"]]})),
     "contradictory"),
    ("duplicate id", lambda t: t["rules"].append(rule(id="US-FL/hours")), "duplicate rule id"),
    ("unknown jurisdiction",
     lambda t: t["rules"].append(rule(id="US-ZZ/x", jurisdiction="US-ZZ")),
     "unknown jurisdiction 'US-ZZ'"),
    ("id of another jurisdiction", lambda t: t["rules"].append(rule(id="US-TX/x")),
     "must start with its jurisdiction"),
    ("unknown kind", lambda t: t["rules"].append(rule(kind="vibes")), "unknown kind 'vibes'"),
    ("no source", lambda t: t["rules"].append(rule(sources=[])), "at least one source"),
    ("http source", lambda t: t["rules"].append(
        rule(sources=[{"cite": "x", "url": "http://example.org"}])), "https://"),
    ("no effective date", lambda t: t["rules"].append(
        {k: v for k, v in rule().items() if k != "effective_from"}), "effective_from"),
    ("ends before it starts", lambda t: t["rules"].append(
        rule(effective_to=date(2025, 1, 1))), "effective_to is before effective_from"),
    ("not a date", lambda t: t["rules"].append(rule(effective_from="2026-01-01")),
     "expected a date"),
    ("unknown confidence", lambda t: t["rules"].append(rule(confidence="sure")), "confidence"),
    ("unknown purpose", lambda t: t["rules"].append(rule(purposes=["sales"])),
     "unknown value 'sales'"),
    ("cap without max", lambda t: t["rules"].append(rule(
        kind="frequency_cap", days=None, per_hours=24)), "needs 'max_calls'"),
    ("overlapping caps", lambda t: t["rules"].append(
        {k: v for k, v in rule(id="US-FL/cap2", kind="frequency_cap", max_calls=2,
                               per_hours=24).items() if k != "days"}),
     "overlapping caps"),
    ("unknown requirement", lambda t: t["rules"].append(
        {k: v for k, v in rule(kind="requirement", requires="vibes").items() if k != "days"}),
     "requires"),
    ("unknown calendar", lambda t: t["rules"].append(
        {k: v for k, v in rule(kind="holidays", calendar="US-ZZ").items() if k != "days"}),
     "unknown calendar 'US-ZZ'"),
    ("unused calendar", lambda t: t["calendars"].update(
        {"US-XX": {"name": "x", "holidays": [{"name": "a", "fixed": "01-01"}]}}),
     "not used by any holidays rule"),
    ("bad month-day", lambda t: t["calendars"]["US-RI"]["holidays"].append(
        {"name": "Bad", "fixed": "02-30"}), "month-day"),
    ("two date rules", lambda t: t["calendars"]["US-RI"]["holidays"].append(
        {"name": "Both", "fixed": "03-01", "easter_offset": 1}), "exactly one of"),
    ("same holiday twice", lambda t: t["calendars"]["US-RI"]["holidays"].append(
        {"name": "Copy", "fixed": "05-04"}), "repeats the date rule"),
    ("unknown observance", lambda t: t["calendars"]["US-RI"]["holidays"].append(
        {"name": "Odd", "fixed": "03-03", "observe": {"sat": "nearest"}}),
     "unknown observance"),
    ("nth zero", lambda t: t["calendars"]["US-RI"]["holidays"].append(
        {"name": "Zero", "nth_weekday": {"month": 3, "weekday": "mon", "n": 0}}), "-1 for the last"),
    ("a fifth weekday that is missing in some years",
     lambda t: t["calendars"]["US-RI"]["holidays"].append(
         {"name": "Fifth", "nth_weekday": {"month": 2, "weekday": "mon", "n": 5}}),
     "does not expand"),
    ("bad zone", lambda t: t["jurisdictions"]["US-FL"].update(zones=["Mars/Olympus"]),
     "unknown time zone"),
    ("state without zone", lambda t: t["jurisdictions"]["US-FL"].update(zones=[]),
     "at least one zone"),
]


@pytest.mark.parametrize(("label", "change", "message"), BAD, ids=[b[0] for b in BAD])
def test_invalid_tables_are_refused_with_the_place_named(label: str, change: Any,
                                                         message: str) -> None:
    data = base()
    change(data)
    assert message in errors_of(data)


def test_all_problems_are_reported_at_once() -> None:
    data = base()
    data["rules"].append(rule(colour="red", confidence="sure"))
    data["extra"] = 1
    text = errors_of(data)
    assert "colour" in text and "confidence" in text and "extra" in text


def test_a_pending_rule_without_a_date_is_never_enforced() -> None:
    data = base()
    data["rules"].append({k: v for k, v in rule(confidence="pending").items()
                          if k != "effective_from"})
    table = parse_table(data, "0" * 64)
    pending = table.rule("US-FL/extra")
    assert pending is not None and not pending.effective_on(date(2030, 1, 1))


def test_team_rules_use_the_same_schema() -> None:
    table = shipped_table()
    (r,) = parse_rules([rule(id="team/no-fridays", days={
        "mon-thu": [["09:00", "17:00"]], "fri-sun": []})], table)
    assert r.team and r.days is not None and r.days[4] == ()
    with pytest.raises(TableError, match="starts with team/"):
        parse_rules([rule()], table)
    with pytest.raises(TableError, match="unknown jurisdiction"):
        parse_rules([rule(id="team/x", jurisdiction="US-ZZ")], table)
    with pytest.raises(TableError, match="expected a list"):
        parse_rules({"id": "x"}, table)
