"""Sets of instants as sorted, disjoint, half-open UTC intervals ``[start, end)`` (pure).

The algebra the composed calling windows are built with: union (:func:`merge`),
intersection, complement within bounds, the end-guard shrink and two lookups. Every function
takes and returns normalised lists (sorted, disjoint, non-adjacent, non-empty intervals), so
results compose. The interval *sources* — a call window's stretches of real time, a local day
— come from :mod:`callfleet.dialer.rules` (``window_spans``, ``local_instant``), so there is one
definition of "inside a window" in callfleet.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

__all__ = [
    "Interval",
    "complement",
    "contains",
    "first_at_or_after",
    "intersect",
    "intersect_all",
    "merge",
    "shrink_ends",
]

Interval = tuple[datetime, datetime]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Normalise: drop empty intervals, sort, and join overlapping or touching ones."""
    out: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """``a ∩ b`` by a linear merge of two normalised lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return out


def intersect_all(sets: Iterable[Sequence[Interval]], since: datetime,
                  until: datetime) -> list[Interval]:
    """The intersection of every set, within ``[since, until)`` (all of it when none)."""
    out: list[Interval] = [(since, until)] if since < until else []
    for s in sets:
        out = intersect(out, s)
        if not out:
            break
    return out


def complement(intervals: Sequence[Interval], since: datetime, until: datetime) -> list[Interval]:
    """``[since, until)`` minus ``intervals``."""
    out: list[Interval] = []
    cursor = since
    for start, end in intervals:
        if end <= cursor:
            continue
        if start >= until:
            break
        if start > cursor:
            out.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < until:
        out.append((cursor, until))
    return out


def shrink_ends(intervals: Sequence[Interval], margin: timedelta,
                keep_end: datetime | None = None) -> list[Interval]:
    """The instants ``t`` with ``[t, t + margin]`` inside one interval: each interval ends
    ``margin`` earlier (an interval shorter than that vanishes). An interval ending exactly at
    ``keep_end`` (the end of the range it was computed for, not a real close) is kept whole.

    Shrinking commutes with intersection — ``shrink(A ∩ B) = shrink(A) ∩ shrink(B)`` for
    normalised lists — which is what lets each constraint carry its own shrunk set and still
    name exactly the ones that refuse an instant.
    """
    if margin <= timedelta(0):
        return list(intervals)
    out: list[Interval] = []
    for start, end in intervals:
        if keep_end is not None and end >= keep_end:
            out.append((start, end))
            continue
        # [t, t + margin] inside [start, end) <=> t + margin < end; as a half-open set,
        # t < end - margin.
        if end - margin > start:
            out.append((start, end - margin))
    return out


def contains(intervals: Sequence[Interval], t: datetime) -> bool:
    """Is ``t`` in the set? (binary search)."""
    i = bisect_right(intervals, (t, datetime.max.replace(tzinfo=t.tzinfo))) - 1
    return i >= 0 and intervals[i][0] <= t < intervals[i][1]


def first_at_or_after(intervals: Sequence[Interval], t: datetime) -> datetime | None:
    """The earliest instant ``>= t`` in the set, or ``None`` when the set ends before."""
    i = bisect_right(intervals, (t, datetime.max.replace(tzinfo=t.tzinfo))) - 1
    if i >= 0 and intervals[i][0] <= t < intervals[i][1]:
        return t
    i += 1
    return intervals[i][0] if i < len(intervals) else None
