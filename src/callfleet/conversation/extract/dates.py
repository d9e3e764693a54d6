"""Dates in speech: "next Tuesday", "March 3rd", "in two weeks", "the 15th"."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from callfleet.conversation.extract.numbers import TENS, UNITS
from callfleet.conversation.extract.text import normalize

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_WEEKDAYS = {d.lower(): i for i, d in enumerate(calendar.day_name)}
ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}
_ORD = (r"(?:\d{1,2}(?:st|nd|rd|th)?|(?:twenty|thirty)[\s-]?(?:first|second|third|fourth|fifth"
        r"|sixth|seventh|eighth|ninth)|" + "|".join(ORDINAL_WORDS) + ")")
MON = r"(?:" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
WD = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_COUNT = r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_MDY_REGIONS = frozenset({"US", "PH", "FM", "MH", "PW", "GU", "AS", "VI", "MP", "PR", "UM"})

_DATE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")),
    ("numeric", re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?(?![\d/])")),
    ("month_day", re.compile(rf"\b({MON})\s+(?:the\s+)?({_ORD})\b(?:,?\s+(\d{{4}}))?")),
    ("day_month", re.compile(rf"\b(?:the\s+)?({_ORD})\s+(?:of\s+)?({MON})(?:,?\s+(\d{{4}}))?")),
    ("nth_rel_month", re.compile(rf"\bthe\s+({_ORD})\s+of\s+(next|this)\s+month\b")),
    ("end_month", re.compile(r"\b(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?(next\s+)?month\b")),
    ("day_after", re.compile(r"\b(?:the\s+)?day\s+after\s+tomorrow\b")),
    ("rel_day", re.compile(r"\b(today|tonight|tomorrow)\b")),
    ("in_n", re.compile(rf"\bin\s+({_COUNT})\s+(day|week|month)s?\b")),
    ("n_from_now", re.compile(rf"\b({_COUNT})\s+(day|week|month)s?\s+from\s+(?:now|today)\b")),
    ("weekday", re.compile(rf"\b(?:(next|this|coming|last)\s+)?({WD})s?\b")),
    ("nth", re.compile(rf"\bthe\s+(\d{{1,2}}(?:st|nd|rd|th)|{'|'.join(ORDINAL_WORDS)})\b"
                       r"(?!\s+(?:one|option|choice|time|of\s+(?:us|them|those|these)))")),
]
DATE_NEG_BEFORE = re.compile(
    r"(?:\bnot\b|\bno\b|n't\b|\bcannot\b|\bexcept\b|\bbesides\b|\bother than\b|\bbut\b|"
    r"\b(?:off|away|busy|unavailable|travell?ing|out of (?:the )?office)\b)"
    r"(?:\s+\w+){0,2}\s*$")
DATE_NEG_AFTER = re.compile(
    r"^\W*(?:won't|will not|doesn't|does not|isn't|is not|wouldn't|can't|is out|is bad|"
    r"is no good|doesn't work|isn't good|is difficult|is tough)\b")


def _parse_ordinal(text: str) -> int | None:
    t = text.lower().replace("-", " ").strip()
    m = re.match(r"(\d{1,2})", t)
    if m:
        return int(m.group(1))
    parts = t.split()
    if len(parts) == 2 and parts[0] in ("twenty", "thirty"):
        return TENS[parts[0]] + ORDINAL_WORDS.get(parts[1], 0)
    return ORDINAL_WORDS.get(t)


def _count(text: str) -> int | None:
    t = text.lower()
    if t.isdigit():
        return int(t)
    if t in ("a", "an"):
        return 1
    return UNITS.get(t)


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    y += d.year
    m += 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _next_year_if_past(d: date | None, today: date) -> date | None:
    if d is not None and d < today:
        return _safe_date(d.year + 1, d.month, d.day)
    return d


@dataclass
class _Date:
    value: date
    start: int
    end: int
    negated: bool = False
    kind: str = ""


def dates(text: str, today: date, region: str) -> list[_Date]:
    low = normalize(text).lower()
    out: list[_Date] = []
    taken: list[tuple[int, int]] = []
    for kind, pat in _DATE_PATTERNS:
        for m in pat.finditer(low):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue
            d = _resolve(kind, m, today, region)
            if d is None:
                continue
            taken.append((m.start(), m.end()))
            before = low[max(0, m.start() - 24):m.start()]
            before = re.split(r"[.!?;]|,\s*(?=\w)", before)[-1]
            after = low[m.end():m.end() + 24]
            negated = bool(DATE_NEG_BEFORE.search(before) or DATE_NEG_AFTER.search(after))
            out.append(_Date(d, m.start(), m.end(), negated, kind))
    out.sort(key=lambda x: x.start)
    # "Monday the 3rd of March", "Tuesday, the 28th": the explicit date stands for both.
    merged: list[_Date] = []
    for d in out:
        if merged and merged[-1].kind == "weekday" and d.kind in (
                "nth", "day_month", "month_day", "numeric", "iso") \
                and re.fullmatch(r"[\s,]*(?:the\s*)?", low[merged[-1].end:d.start]):
            d = _Date(d.value, merged[-1].start, d.end, d.negated or merged[-1].negated, d.kind)
            merged[-1] = d
            continue
        merged.append(d)
    return merged


def _resolve(kind: str, m: re.Match[str], today: date, region: str) -> date | None:
    g = m.groups()
    if kind == "iso":
        return _safe_date(int(g[0]), int(g[1]), int(g[2]))
    if kind == "numeric":
        a, b = int(g[0]), int(g[1])
        month, day = (a, b) if region.upper() in _MDY_REGIONS else (b, a)
        if g[2]:
            year = int(g[2]) + (2000 if len(g[2]) == 2 else 0)
            return _safe_date(year, month, day)
        return _next_year_if_past(_safe_date(today.year, month, day), today)
    if kind in ("month_day", "day_month"):
        mon, ordinal = (g[0], g[1]) if kind == "month_day" else (g[1], g[0])
        month = _MONTHS.get(mon.rstrip(".").lower())
        day = _parse_ordinal(ordinal)
        if not month or not day:
            return None
        if g[2]:
            return _safe_date(int(g[2]), month, day)
        return _next_year_if_past(_safe_date(today.year, month, day), today)
    if kind == "nth_rel_month":
        day = _parse_ordinal(g[0])
        base = _add_months(today.replace(day=1), 1 if g[1] == "next" else 0)
        return _safe_date(base.year, base.month, day) if day else None
    if kind == "end_month":
        base = _add_months(today.replace(day=1), 1 if g[0] else 0)
        return base.replace(day=calendar.monthrange(base.year, base.month)[1])
    if kind == "day_after":
        return today + timedelta(days=2)
    if kind == "rel_day":
        return today + timedelta(days=1 if g[0] == "tomorrow" else 0)
    if kind in ("in_n", "n_from_now"):
        n = _count(g[0])
        if n is None or n > 400:
            return None
        if g[1] == "day":
            return today + timedelta(days=n)
        if g[1] == "week":
            return today + timedelta(weeks=n)
        return _add_months(today, n)
    if kind == "weekday":
        if g[0] == "last":
            return None
        target = _WEEKDAYS[g[1]]
        delta = (target - today.weekday()) % 7
        if delta == 0 and g[0] != "this":
            delta = 7
        return today + timedelta(days=delta)
    if kind == "nth":
        day = _parse_ordinal(g[0])
        if not day:
            return None
        d = _safe_date(today.year, today.month, day)
        if d is None or d < today:
            nxt = _add_months(today.replace(day=1), 1)
            d = _safe_date(nxt.year, nxt.month, day)
        return d
    return None  # pragma: no cover
