"""The question the assistant asks for an extraction field when no model writes its words.

A field's ``description`` tells a model (and the extractor) what the value means; it is not
something to say aloud ("The person's email address"). Each field may carry its own
``question``; without one, a natural question is derived from its key and type:

>>> default_question("email", "email", None)
'Could you tell me your email address?'
>>> default_question("interest_level", "select", ["high", "medium", "low", "none"])
'How would you describe your interest level: high, medium, low or none?'
>>> default_question("team_size", "number", None)
'Roughly what is your team size?'
>>> default_question("callback_day", "text", None)
'When would be a good time to call you back?'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _words(key: str) -> str:
    return " ".join(key.replace("-", "_").split("_")).strip().lower() or "answer"


def _choices(options: Sequence[str]) -> str:
    words = [o.replace("_", " ") for o in options]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def default_question(key: str, ftype: str | None, options: Sequence[str] | None) -> str:
    words = _words(key)
    if ftype == "email" or "email" in words:
        return "Could you tell me your email address?"
    if ftype == "phone" or words in ("phone", "phone number", "mobile", "cell"):
        return "What is the best phone number to reach you on?"
    if "callback" in words.replace(" ", "") or "call back" in words:
        return "When would be a good time to call you back?"
    if ftype == "select" and options:
        return f"How would you describe your {words}: {_choices(options)}?"
    if ftype == "boolean":
        return f"Could you tell me, yes or no: {words}?"
    if ftype == "date":
        return f"What date should I note for your {words}?"
    if ftype == "number":
        return f"Roughly what is your {words}?"
    return f"Could you tell me your {words}?"


def question_for(field: Mapping[str, Any]) -> str:
    """The field's own ``question``, or the default for its key and type."""
    own = (field.get("question") or "").strip()
    if own:
        return own
    return default_question(str(field.get("key") or ""), field.get("type"),
                            field.get("options"))
