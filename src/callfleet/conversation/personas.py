"""The simulated carrier's scripted callees: who they are and what they say.

A persona (``interested``, ``busy_now``, ``callback``, ``gives_email``, ``asks_price``,
``refuses``, ``opt_out``, ``gives_info``; the simulated carrier picks one per number) has
*facts* (an email, an interest level, a preferred callback day, a budget, a team size, whether
they are ready to buy) and answers the assistant's questions from them: a question about
email gets the email, a question about the budget gets the budget, and so on. Anything else
gets the persona's next small-talk line. The same callee talks to the deterministic script
and to an LLM assistant, so both paths can be checked against the same known facts.

Facts are a pure function of the persona, the contact's first name and the dialed number:

* email: ``<first name>.<last 4 digits of the number>@example.com`` (personas that share it)
* budget: ``1000 + 500 * (last digit mod 5)`` a month (``gives_info``)
* team size: 50 (``gives_info``)
* callback day: ``thursday`` (``callback``) or ``friday`` (``busy_now``)
* interest: high (``interested``, ``gives_info``), medium (``gives_email``, ``asks_price``,
  ``callback``, ``busy_now``), none (``refuses``)
* ready to buy: ``qualified`` (``interested``, ``gives_info``), ``unqualified`` (``refuses``)

Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PERSONAS = ("interested", "busy_now", "callback", "gives_email", "asks_price", "refuses",
            "opt_out", "gives_info")

# Small talk per persona: said when the assistant asks nothing the callee has a fact for.
SMALL_TALK: dict[str, list[str]] = {
    "interested": ["Oh hi, yes, I have a minute.", "That sounds interesting, tell me more.",
                   "Sure, send me the details."],
    "busy_now": ["I'm in the middle of something right now.",
                 "Can you call me back later this week?"],
    "callback": ["Hi. This isn't a good time.", "Call me back on Thursday afternoon please."],
    "gives_email": ["Hello, yes.", "Sure, my email is {email}.", "That's right. Thanks, bye."],
    "asks_price": ["Hi. How much does it cost?", "Hmm, what's the price per month?",
                   "Okay, I'll think about it."],
    "refuses": ["No thanks, we're not interested.", "No, really, not interested. Goodbye."],
    "opt_out": ["Who is this?", "Please remove me from your list and don't call me again."],
    "gives_info": ["Hello, speaking.", "We're a team of about 50 people.",
                   "Our budget is around {budget} a month."],
}

# How many times a persona speaks before it says goodbye (a bounded conversation).
MAX_REPLIES = 8
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Topics in the order they are checked against the assistant's words.
TOPICS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"\be-?mail\b")),
    ("ready", re.compile(r"\bready to buy\b|\bqualif")),
    ("interest", re.compile(r"\binterest")),
    ("callback", re.compile(r"\bcall ?back\b|\bcall you back\b|\bwhich day\b|\bwhat day\b|"
                            r"\bbest day\b|\bwhen\b")),
    ("budget", re.compile(r"\bbudget\b|\bspend\b|\bafford\b")),
    ("team_size", re.compile(r"\bhow many\b|\bteam size\b|\bemployees\b|\bheadcount\b")),
]


@dataclass
class Facts:
    email: str | None = None
    interest: str | None = None  # high | medium | low | none
    callback_day: str | None = None
    budget: int | None = None
    team_size: int | None = None
    ready: str | None = None  # qualified | unqualified

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _digits(number: str | None) -> str:
    return re.sub(r"\D", "", number or "") or "0000"


def persona_email(first_name: str | None, number: str | None) -> str:
    name = re.sub(r"[^a-z0-9]", "", (first_name or "someone").lower()) or "someone"
    return f"{name}.{_digits(number)[-4:]}@example.com"


def facts_for(persona: str, contact: dict[str, Any] | None, number: str | None) -> Facts:
    """What this callee knows about themselves (see the module docstring)."""
    email = persona_email((contact or {}).get("first_name"), number)
    last = int(_digits(number)[-1])
    budget = 1000 + 500 * (last % 5)
    return {
        "interested": Facts(interest="high", ready="qualified"),
        "busy_now": Facts(interest="medium", callback_day="friday"),
        "callback": Facts(interest="medium", callback_day="thursday"),
        "gives_email": Facts(email=email, interest="medium"),
        "asks_price": Facts(interest="medium"),
        "refuses": Facts(interest="none", ready="unqualified"),
        "opt_out": Facts(),
        "gives_info": Facts(interest="high", budget=budget, team_size=50, ready="qualified"),
    }.get(persona, Facts())


def topic_of(assistant_text: str) -> str | None:
    low = (assistant_text or "").lower().replace("’", "'")
    for name, pattern in TOPICS:
        if pattern.search(low):
            return name
    return None


@dataclass
class Callee:
    """One scripted callee in one call. ``reply`` is deterministic in what was said so far."""

    persona: str
    facts: Facts
    replies: int = 0
    small_talk_used: int = 0
    said_goodbye: bool = False
    used_topics: set[str] = field(default_factory=set)

    @classmethod
    def for_call(cls, persona: str | None, contact: dict[str, Any] | None,
                 number: str | None) -> Callee:
        persona = persona if persona in PERSONAS else "interested"
        return cls(persona, facts_for(persona, contact, number))

    def replay(self, messages: list[dict[str, Any]]) -> None:
        """Catch up with a conversation resumed from stored messages."""
        last_assistant = ""
        for m in messages:
            if m.get("role") == "assistant":
                last_assistant = str(m.get("text") or "")
            elif m.get("role") == "user":
                self.reply(last_assistant)

    def _line(self, i: int) -> str:
        f = self.facts
        lines = SMALL_TALK.get(self.persona, SMALL_TALK["interested"])
        return lines[min(i, len(lines) - 1)].format(email=f.email or "", budget=f.budget or "")

    def reply(self, assistant_text: str) -> str:
        """The callee's answer to the assistant's last turn."""
        self.replies += 1
        if self.persona == "opt_out":
            return self._line(0 if self.replies == 1 else 1)
        if self.persona == "refuses":
            if self.replies >= 2:
                self.said_goodbye = True
            return self._line(0 if self.replies == 1 else 1)
        if self.replies >= MAX_REPLIES:
            self.said_goodbye = True
            return "Sorry, I have to go now. Goodbye."
        answer = self._answer(topic_of(assistant_text))
        if answer is not None:
            return answer
        lines = SMALL_TALK.get(self.persona, SMALL_TALK["interested"])
        if self.small_talk_used >= len(lines):
            return "Okay."
        text = self._line(self.small_talk_used)
        self.small_talk_used += 1
        return text

    def _answer(self, topic: str | None) -> str | None:
        f = self.facts
        if topic is None:
            return None
        self.used_topics.add(topic)
        if topic == "email":
            return f"Sure, my email is {f.email}." if f.email else \
                "I'd rather not give out my email."
        if topic == "interest":
            return {
                "high": "Honestly, high. This is exactly what we need.",
                "medium": "I'd say medium, I need to know more first.",
                "low": "Low, to be honest.",
                "none": "None at all, we're not interested.",
            }.get(f.interest or "", "I'm not sure yet.")
        if topic == "callback":
            if f.callback_day:
                return f"{f.callback_day.capitalize()} works best for me."
            return "I'm not sure, any day really."
        if topic == "budget":
            return f"Our budget is around {f.budget} a month." if f.budget else \
                "I can't say yet."
        if topic == "team_size":
            return f"We're a team of about {f.team_size} people." if f.team_size else \
                "I couldn't tell you."
        if topic == "ready":
            if f.ready == "qualified":
                return "Yes, we're ready to buy, so qualified."
            if f.ready == "unqualified":
                return "No, unqualified, we won't buy anything."
            return "I'm not sure yet."
        return None
