"""What an AI voice must say and do (pure): the assistant check for telemarketing campaigns
and the abandonment count (docs/decisions/0026).

* 47 CFR 64.1200(b): the business's identity at the start, a callback number, and for
  telemarketing an automated opt-out offered right after the identification;
* a recording notice when the call is recorded (all-party-consent states: any contact may be
  in one);
* 64.1200(a)(7): a call is abandoned when no greeting comes within 2 s of the answer; at most
  3 % of a campaign's answered calls over 30 days.

The checks read the assistant's first message as text. They prove that the words are there,
not that they are understood: docs/compliance.md says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ABANDON_AFTER_SECONDS", "GREETINGS", "MAX_ABANDON_RATE", "Abandonment",
           "abandonment", "assistant_problems", "greeting"]

ABANDON_AFTER_SECONDS = 2.0
#: What a transcript says of its greeting (``greeting``): only ``on_time`` is not abandoned.
GREETINGS = ("on_time", "late", "none")
MAX_ABANDON_RATE = 0.03
_OPT_OUT = re.compile(
    r"\b(opt[- ]?out|stop|unsubscribe|do[- ]not[- ]call|don'?t call|remove you|"
    r"no longer (?:want|wish) to (?:be called|receive)|press (?:9|nine))\b", re.IGNORECASE)
_RECORDING = re.compile(r"\b(record(?:ed|ing)?|transcri(?:bed|ption))\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _names(text: str, business: str) -> bool:
    wanted = _words(business)
    got = _words(text)
    n = len(wanted)
    return bool(wanted) and any(got[i:i + n] == wanted for i in range(len(got) - n + 1))


def assistant_problems(first_message: str | None, *, business_name: str | None,
                       callback_number: str | None, recording: bool) -> list[str]:
    """What an assistant's first message (and the team's settings) lack for AI-voice
    telemarketing; empty when nothing is missing."""
    text = first_message or ""
    problems = []
    if not business_name or not _names(text, business_name):
        named = business_name or "set businessName in /api/compliance/settings"
        problems.append(f"the first message must name the business ({named})")
    if not _OPT_OUT.search(text):
        problems.append("the first message must offer an opt-out (e.g. \"say stop or press 9 "
                        "to never be called again\")")
    if not callback_number:
        problems.append("a callback number must be configured (callbackNumber in "
                        "/api/compliance/settings)")
    if recording and not _RECORDING.search(text):
        problems.append("the assistant records calls: the first message must say the call is "
                        "recorded")
    return problems


@dataclass(frozen=True)
class Abandonment:
    answered: int
    abandoned: int

    @property
    def rate(self) -> float:
        return round(self.abandoned / self.answered, 4) if self.answered else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"answered": self.answered, "abandoned": self.abandoned, "rate": self.rate,
                "max_rate": MAX_ABANDON_RATE, "over_limit": self.rate > MAX_ABANDON_RATE,
                "greeting_within_seconds": ABANDON_AFTER_SECONDS, "period_days": 30}


def _first_assistant_time(messages: Sequence[dict[str, Any]] | None) -> float | None:
    for m in messages or ():
        if m.get("role") == "assistant":
            try:
                return float(m.get("time") or 0.0)
            except (TypeError, ValueError):
                return None
    return None


def greeting(messages: Sequence[dict[str, Any]] | None) -> str:
    """The judgement of one transcript: the assistant's first message came within
    ``ABANDON_AFTER_SECONDS`` of the answer (``on_time``), later (``late``), or there is none
    (``none``, also when its time is not a number). Stored on each call when its messages are
    written (``calls.models.Call.greeting``, docs/decisions/0048)."""
    first = _first_assistant_time(messages)
    if first is None:
        return "none"
    return "late" if first > ABANDON_AFTER_SECONDS else "on_time"


def abandonment(answered_calls: Iterable[Sequence[dict[str, Any]] | None]) -> Abandonment:
    """Count answered calls whose assistant did not speak within 2 s of the answer (or never)."""
    answered = abandoned = 0
    for messages in answered_calls:
        answered += 1
        if greeting(messages) != "on_time":
            abandoned += 1
    return Abandonment(answered, abandoned)
