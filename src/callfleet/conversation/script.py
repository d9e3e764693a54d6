"""The deterministic conversation: the assistant's script against a scripted callee.

Used when no LLM is configured (and always by the simulated carrier's personas). The
assistant side follows its first message and then asks for its extraction fields; the
callee side is one of the simulated personas. The result decides the attempt's outcome:
``opted_out`` when the callee asks to be removed, else ``answered``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

OPT_OUT_PHRASES = (
    "don't call me again", "do not call me again", "remove me from your list",
    "take me off your list", "stop calling", "unsubscribe", "put me on your do not call list",
)

PERSONA_LINES: dict[str, list[str]] = {
    "interested": ["Oh hi, yes, I have a minute.", "That sounds interesting, tell me more.",
                   "Sure, send me the details."],
    "busy_now": ["I'm in the middle of something right now.",
                 "Can you call me back later this week?"],
    "callback": ["Hi. This isn't a good time.", "Call me back on Thursday afternoon please."],
    "gives_email": ["Hello, yes.", "Sure, my email is {email}.",
                    "That's right. Thanks, bye."],
    "asks_price": ["Hi. How much does it cost?", "Hmm, what's the price per month?",
                   "Okay, I'll think about it."],
    "refuses": ["No thanks, we're not interested.", "No, really, not interested. Goodbye."],
    "opt_out": ["Who is this?", "Please remove me from your list and don't call me again."],
    "gives_info": ["Hello, speaking.", "We're a team of about fifty people.",
                   "Our budget is around 2000 a month."],
}


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


def run_scripted(
    *, first_message: str, persona: str, contact: dict[str, Any] | None,
    extraction_fields: list[dict[str, Any]], closing_phrase: str | None,
) -> ConversationResult:
    lines = PERSONA_LINES.get(persona, PERSONA_LINES["interested"])
    email = (contact or {}).get("email") or _fake_email(contact)
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
    for i, line in enumerate(lines):
        text = line.format(email=email)
        say("user", text)
        if detects_opt_out(text):
            opted_out = True
            say("assistant", "Understood, I've removed you from our list. Sorry to bother you.")
            break
        if i < len(questions):
            say("assistant", questions[i])
        elif i < len(lines) - 1:
            say("assistant", "Thanks, that's helpful.")
    if not opted_out:
        say("assistant", closing_phrase or "Thank you for your time. Goodbye!")
    return ConversationResult(
        messages=messages,
        outcome="opted_out" if opted_out else "answered",
        ended_reason="customer_opted_out" if opted_out else "assistant_ended_call",
        duration_seconds=round(t, 1),
    )


def _fake_email(contact: dict[str, Any] | None) -> str:
    name = ((contact or {}).get("first_name") or "someone").lower()
    tag = hashlib.sha256(name.encode()).hexdigest()[:4]
    return f"{name}.{tag}@example.com"


def transcript(messages: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{'AI' if m['role'] == 'assistant' else 'User'}: {m['text']}" for m in messages
    )
