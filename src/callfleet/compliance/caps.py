"""Frequency caps: at most N calls per person in any rolling window (pure).

A cap counts the calls already made to a person (by the whole team, from any campaign and any
caller-ID number: Florida's "regardless of the phone number used") whose start lies in the
rolling window ``(t - per, t]``. A call may start at ``t`` only while fewer than ``max_calls``
such calls exist. When a cap is full, the next allowed time is when its oldest counted call
leaves the window: with the calls sorted newest first, the ``max_calls``-th one plus ``per``.
A rolling window is not a calendar day; a "3 per 24 h" cap never allows a 4th call 1 minute
after midnight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["Cap", "CapState", "PastCall", "check_caps"]


@dataclass(frozen=True)
class Cap:
    rule_id: str
    max_calls: int
    per: timedelta
    counts: str = "attempts"  # attempts | completed (answered calls only)

    def __post_init__(self) -> None:
        if self.max_calls < 1:
            raise ValueError("a cap allows at least one call")
        if self.per <= timedelta(0):
            raise ValueError("a cap's window must be positive")
        if self.counts not in ("attempts", "completed"):
            raise ValueError("a cap counts 'attempts' or 'completed' calls")


@dataclass(frozen=True)
class PastCall:
    """A call already made to the person: when it started, and whether it was answered."""

    at: datetime
    completed: bool = False


@dataclass(frozen=True)
class CapState:
    """How full one cap is at the evaluated instant (stored with the decision)."""

    rule_id: str
    count: int
    max_calls: int
    per_hours: float
    oldest_at: datetime | None
    release_at: datetime | None  # None while the cap is not full

    @property
    def full(self) -> bool:
        return self.release_at is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule_id,
            "count": self.count,
            "max": self.max_calls,
            "per_hours": self.per_hours,
            "oldest_at": self.oldest_at.isoformat() if self.oldest_at else None,
            "release_at": self.release_at.isoformat() if self.release_at else None,
        }


def check_caps(caps: Sequence[Cap], history: Sequence[PastCall],
               now: datetime) -> list[CapState]:
    """The state of every cap at ``now`` (calls after ``now`` are ignored)."""
    states: list[CapState] = []
    for cap in caps:
        counted = sorted(
            (c.at for c in history
             if now - cap.per < c.at <= now and (cap.counts == "attempts" or c.completed)),
            reverse=True,
        )
        release = counted[cap.max_calls - 1] + cap.per if len(counted) >= cap.max_calls \
            else None
        states.append(CapState(cap.rule_id, len(counted), cap.max_calls,
                               cap.per.total_seconds() / 3600,
                               counted[-1] if counted else None, release))
    return states
