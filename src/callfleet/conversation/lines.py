"""Everything the assistant can say on one call, rendered for that call.

Every utterance — the first message, the closing phrase, the voicemail message, each
extraction field's question, a transfer's announcement and the brief to the transferee, a
custom tool's message, and the system prompt — goes through :func:`lines_for`, which renders
the prompt variables of SPEC 3 (``{{contact.first_name}}``, ``{{company.name}}``, ...) once per
call. So no path (the deterministic script, the LLM conversation, voicemail, voice) can speak
a line without its variables; an unknown variable renders empty and is reported
(``Lines.unknown``), never spoken as braces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callfleet.assistants.prompts import render
from callfleet.assistants.questions import question_for

DEFAULT_GREETING = "Hello, this is an automated assistant calling."
DEFAULT_CLOSING = "Thank you for your time. Goodbye!"
OPT_OUT_REPLY = "Understood, I've removed you from our list. Sorry to bother you."
ERROR_REPLY = "I'm sorry, we're having technical difficulties. We'll call you back. Goodbye."


def _cfg(assistant: Any, name: str) -> dict[str, Any]:
    return getattr(assistant, name, None) or {}


@dataclass(frozen=True)
class Question:
    key: str
    text: str


@dataclass
class Lines:
    system_prompt: str = ""
    first_message: str = ""
    closing: str = DEFAULT_CLOSING
    voicemail: str = ""
    questions: list[Question] = field(default_factory=list)
    # department name (lower case) -> what the assistant says before transferring / the brief
    # spoken to the department on a warm transfer ("" when none is configured)
    announcements: dict[str, str] = field(default_factory=dict)
    briefs: dict[str, str] = field(default_factory=dict)
    # custom tool name -> what the assistant says while the tool runs ("" for nothing)
    tool_messages: dict[str, str] = field(default_factory=dict)
    trigger_phrases: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def announcement(self, department: str) -> str:
        return self.announcements.get(department.lower()) or \
            f"Let me transfer you to {department} now."

    def brief(self, department: str) -> str:
        return self.briefs.get(department.lower(), "")

    def tool_message(self, tool: str) -> str:
        return self.tool_messages.get(tool, "")


def lines_for(assistant: Any, variables: Mapping[str, Any]) -> Lines:
    """The assistant's lines for one call (``variables`` from ``prompts.variables_for``)."""
    unknown: list[str] = []

    def say(template: str | None) -> str:
        text, missing = render(template or "", variables)
        unknown.extend(m for m in missing if m not in unknown)
        return " ".join(text.split())  # an empty variable leaves no double space

    if assistant is None:
        return Lines(first_message=DEFAULT_GREETING)
    end = _cfg(assistant, "end_call")
    extraction = _cfg(assistant, "info_extraction")
    fields = [f for f in extraction.get("fields") or [] if f.get("key")] \
        if extraction.get("enabled") else []
    departments = [d for d in _cfg(assistant, "call_transfer").get("departments") or []
                   if d.get("name")]
    lines = Lines(
        system_prompt=render(getattr(assistant, "system_prompt", "") or "", variables)[0],
        first_message=say(getattr(assistant, "first_message", None)),
        closing=say(end.get("closing_phrase")) or DEFAULT_CLOSING,
        voicemail=say(getattr(assistant, "voicemail_message", None)
                      or getattr(assistant, "first_message", None)),
        questions=[Question(f["key"], say(question_for(f))) for f in fields],
        announcements={d["name"].lower(): say(d.get("announcement")) for d in departments
                       if d.get("announcement")},
        briefs={d["name"].lower(): say(d.get("intro_message")) for d in departments
                if d.get("intro_message")},
        tool_messages={t["name"]: say(t.get("message")) for t in
                       getattr(assistant, "tools", None) or [] if t.get("name")
                       and t.get("message")},
        trigger_phrases=[str(p) for p in end.get("trigger_phrases") or [] if p]
        if end.get("enabled") else [],
    )
    _, missing = render(getattr(assistant, "system_prompt", "") or "", variables)
    unknown.extend(m for m in missing if m not in unknown)
    lines.unknown = unknown
    return lines
