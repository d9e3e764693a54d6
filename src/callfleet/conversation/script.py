"""The deterministic conversation: the assistant's script against a scripted callee.

Used when no LLM is configured. The assistant side follows its first message and then asks
for its extraction fields; the callee side is one of the simulated personas
(``conversation.personas``), answering from its facts. The result decides the attempt's outcome:
``opted_out`` when the callee asks to be removed, else ``answered``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callfleet.conversation.personas import SMALL_TALK, Callee

OPT_OUT_PHRASES = (
    "don't call me again", "do not call me again", "remove me from your list",
    "take me off your list", "stop calling", "unsubscribe", "put me on your do not call list",
)

@dataclass
class ConversationResult:
    messages: list[dict[str, Any]]
    outcome: str  # answered | opted_out
    ended_reason: str
    duration_seconds: float
    unknown_variables: list[str] = field(default_factory=list)


def detects_opt_out(text: str) -> bool:
    low = text.lower().replace("’", "'")
    return any(p in low for p in OPT_OUT_PHRASES)


def _seconds(text: str) -> float:
    return 1.0 + len(text.split()) * 0.4  # ~150 words per minute plus a pause


def seconds_to_say(text: str) -> float:
    return _seconds(text)


def run_scripted(
    *, first_message: str, persona: str, contact: dict[str, Any] | None,
    extraction_fields: list[dict[str, Any]], closing_phrase: str | None,
    number: str | None = None,
) -> ConversationResult:
    """The assistant says its first message, then asks each extraction field's question
    (its description) once; the callee answers from its facts (``personas``)."""
    callee = Callee.for_call(persona, contact, number)
    t = 0.0
    messages: list[dict[str, Any]] = []

    def say(role: str, text: str) -> None:
        nonlocal t
        messages.append({"role": role, "text": text, "time": round(t, 1)})
        t += _seconds(text)

    say("assistant", first_message or "Hello, this is an automated assistant calling.")
    questions = [f.get("description") or f"Could you tell me your {f.get('key')}?"
                 for f in extraction_fields]
    opted_out = False
    last = messages[0]["text"]
    turns = max(len(questions) + 1, len(SMALL_TALK.get(callee.persona, [])))
    for i in range(turns):
        text = callee.reply(last)
        say("user", text)
        if detects_opt_out(text):
            opted_out = True
            say("assistant", "Understood, I've removed you from our list. Sorry to bother you.")
            break
        if callee.said_goodbye:
            break
        if i < len(questions):
            last = questions[i]
        elif i < turns - 1:
            last = "Thanks, that's helpful."
        else:
            break
        say("assistant", last)
    if not opted_out:
        say("assistant", closing_phrase or "Thank you for your time. Goodbye!")
    return ConversationResult(
        messages=messages,
        outcome="opted_out" if opted_out else "answered",
        ended_reason="customer_opted_out" if opted_out else "assistant_ended_call",
        duration_seconds=round(t, 1),
    )


def transcript(messages: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{'AI' if m['role'] == 'assistant' else 'User'}: {m['text']}" for m in messages
    )
