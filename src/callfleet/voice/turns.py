"""The deterministic assistant, turn by turn: what the voice brain says without an LLM.

The same behaviour as the text simulation's script (``conversation.script.run_scripted``):
the rendered first message, then each extraction field's question once, in order, then the
closing phrase; an opt-out phrase gets the removal line and ends the call as ``opted_out``;
a goodbye or an end-call trigger phrase from the callee ends it politely. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from callfleet.conversation.agent import DEFAULT_CLOSING, OPT_OUT_REPLY
from callfleet.conversation.script import detects_opt_out

GOODBYE = re.compile(r"\b(good ?bye|bye|have to go|gotta go)\b", re.IGNORECASE)
DEFAULT_OPENING = "Hello, this is an automated assistant calling."


@dataclass(frozen=True)
class Turn:
    text: str
    end_call: bool = False
    outcome: str | None = None
    ended_reason: str | None = None


class DeterministicPolicy:
    def __init__(self, *, first_message: str, extraction_fields: list[dict[str, Any]],
                 closing_phrase: str | None = None,
                 trigger_phrases: list[str] | None = None) -> None:
        self.first_message = first_message.strip() or DEFAULT_OPENING
        self.questions = [f.get("description") or f"Could you tell me your {f.get('key')}?"
                          for f in extraction_fields]
        self.closing = (closing_phrase or "").strip() or DEFAULT_CLOSING
        self.triggers = [p.lower() for p in trigger_phrases or [] if p]
        self.asked = 0
        self.ended = False

    @classmethod
    def for_assistant(cls, assistant: Any, first_message: str) -> DeterministicPolicy:
        fields = ((getattr(assistant, "info_extraction", None) or {}).get("fields") or [])
        end = getattr(assistant, "end_call", None) or {}
        return cls(first_message=first_message, extraction_fields=fields,
                   closing_phrase=end.get("closing_phrase"),
                   trigger_phrases=end.get("trigger_phrases") if end.get("enabled") else None)

    def opening(self) -> Turn:
        return Turn(self.first_message)

    def _end(self, text: str, outcome: str, reason: str) -> Turn:
        self.ended = True
        return Turn(text, True, outcome, reason)

    def reply(self, user_text: str) -> Turn:
        if self.ended:
            return Turn("")
        if detects_opt_out(user_text):
            return self._end(OPT_OUT_REPLY, "opted_out", "customer_opted_out")
        low = user_text.lower().replace("’", "'")
        if any(t in low for t in self.triggers) or GOODBYE.search(low):
            return self._end(self.closing, "answered", "customer_ended_call")
        if self.asked < len(self.questions):
            self.asked += 1
            return Turn(self.questions[self.asked - 1])
        return self._end(f"Thanks, that's helpful. {self.closing}", "answered",
                         "assistant_ended_call")

    def idle_prompt(self) -> Turn:
        return Turn("Are you still there?")

    def idle_goodbye(self, callee_spoke: bool) -> Turn:
        return self._end("It seems this isn't a good time. I'll try you another day. Goodbye!",
                         "answered" if callee_spoke else "no_answer", "silence_timeout")
