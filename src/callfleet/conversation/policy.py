"""The deterministic assistant, turn by turn: what to say next without a model.

It greets with the first message, asks each extraction field's question once (``Lines``
renders them), then thanks and closes; it honours an opt-out at once, and closes when the
person says goodbye or one of the end-call trigger phrases. The same object drives the text
simulation (``script.run_scripted`` against a scripted callee) and a live voice call (its
replies come from what speech-to-text heard), so both say the same things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from callfleet.conversation.lines import DEFAULT_GREETING, OPT_OUT_REPLY, Lines

OPT_OUT_PHRASES = (
    "don't call me again", "do not call me again", "remove me from your list",
    "take me off your list", "stop calling", "unsubscribe", "put me on your do not call list",
)
THANKS = "Thanks, that's helpful."
_GOODBYE = re.compile(r"\b(?:good\s*bye|bye(?:\s*bye)?)\b")


def normalise(text: str) -> str:
    return (text or "").lower().replace("’", "'")


def detects_opt_out(text: str) -> bool:
    low = normalise(text)
    return any(p in low for p in OPT_OUT_PHRASES)


def says_goodbye(text: str) -> bool:
    return bool(_GOODBYE.search(normalise(text)))


@dataclass(frozen=True)
class Turn:
    """What the assistant says now; with ``end_call`` it hangs up once the line is spoken,
    and ``outcome`` / ``ended_reason`` are the call's (``answered`` or ``opted_out``)."""

    text: str
    end_call: bool = False
    outcome: str | None = None
    ended_reason: str | None = None


class DeterministicPolicy:
    """``opening()`` once, then ``reply(user_text)`` for each thing the person says.

    ``exchanges``: how many times the person speaks before the assistant closes (by default
    one answer per question plus the answer to the greeting); extra exchanges get a short
    acknowledgement."""

    def __init__(self, lines: Lines, *, exchanges: int | None = None) -> None:
        self.lines = lines
        self.exchanges = exchanges if exchanges is not None else len(lines.questions) + 1
        self.heard = 0
        self.ended = False

    def opening(self) -> Turn:
        return Turn(self.lines.first_message or DEFAULT_GREETING)

    def _close(self) -> Turn:
        self.ended = True
        return Turn(self.lines.closing, True, "answered", "assistant_ended_call")

    def reply(self, user_text: str) -> Turn:
        if self.ended:
            return Turn("", True, "answered", "assistant_ended_call")
        i = self.heard
        self.heard += 1
        if detects_opt_out(user_text):
            self.ended = True
            return Turn(OPT_OUT_REPLY, True, "opted_out", "customer_opted_out")
        low = normalise(user_text)
        if says_goodbye(user_text) or any(p.lower() in low for p in self.lines.trigger_phrases):
            return self._close()
        if i < len(self.lines.questions):
            return Turn(self.lines.questions[i].text)
        if i < self.exchanges - 1:
            return Turn(THANKS)
        return self._close()
