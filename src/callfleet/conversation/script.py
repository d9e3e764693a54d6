"""The deterministic conversation of the simulated network: the deterministic assistant
(``policy.DeterministicPolicy``) against a scripted callee (``personas.Callee``).

Used when no LLM is configured. The result decides the attempt's outcome: ``opted_out`` when
the callee asks to be removed, else ``answered``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callfleet.conversation.lines import Lines
from callfleet.conversation.personas import SMALL_TALK, Callee
from callfleet.conversation.policy import DeterministicPolicy


@dataclass
class ConversationResult:
    messages: list[dict[str, Any]]
    outcome: str  # answered | opted_out
    ended_reason: str
    duration_seconds: float


def seconds_to_say(text: str) -> float:
    return 1.0 + len(text.split()) * 0.4  # ~150 words per minute plus a pause


def run_scripted(*, lines: Lines, persona: str, contact: dict[str, Any] | None,
                 number: str | None = None) -> ConversationResult:
    """The assistant greets, asks each extraction field's question once and closes; the
    callee answers from its facts (``personas``). A talkative persona gets a short
    acknowledgement for each extra line it says."""
    callee = Callee.for_call(persona, contact, number)
    policy = DeterministicPolicy(lines, exchanges=max(
        len(lines.questions) + 1, len(SMALL_TALK.get(callee.persona, []))))
    t = 0.0
    messages: list[dict[str, Any]] = []

    def say(role: str, text: str) -> None:
        nonlocal t
        messages.append({"role": role, "text": text, "time": round(t, 1)})
        t += seconds_to_say(text)

    turn = policy.opening()
    say("assistant", turn.text)
    while not turn.end_call:
        heard = callee.reply(turn.text)
        say("user", heard)
        turn = policy.reply(heard)
        if turn.text:
            say("assistant", turn.text)
    return ConversationResult(messages=messages, outcome=turn.outcome or "answered",
                              ended_reason=turn.ended_reason or "assistant_ended_call",
                              duration_seconds=round(t, 1))


def transcript(messages: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{'AI' if m['role'] == 'assistant' else 'User'}: {m['text']}" for m in messages
    )
