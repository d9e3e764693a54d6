"""Assistant templates: the starting configuration ``templateId`` pre-fills on create.

Every first message says who is calling, that it is an AI assistant, and on whose behalf —
callers must identify themselves (TCPA / Ofcom guidance, and several US states require AI
disclosure). The business name is the team's name, filled in once at creation (``{business}``)
because no per-call variable names the calling team; ``{{...}}`` variables stay in the text and
are rendered per call by ``assistants.prompts.render``.

``{{company.*}}`` is the contact's company (the organisation being called), not the caller.
"""

from __future__ import annotations

import copy
from typing import Any

TEMPLATE_IDS = ("outbound-setter", "inbound-support", "follow-up", "custom")

_FAREWELLS = ["goodbye", "bye for now", "have a great day", "talk to you soon"]

_OUTBOUND_SETTER_PROMPT = """\
You are a friendly, concise AI appointment setter calling on behalf of {business}.
You are speaking with {{contact.full_name}} at {{company.name}} as part of the \
"{{campaign.name}}" campaign.

Goal: find out whether {{contact.first_name}} is interested and, if so, agree on a day and \
time for a short follow-up call with a member of the {business} team.

How to talk:
- You are on a phone call: keep every reply to one or two short sentences and ask one \
question at a time.
- Be honest that you are an AI assistant if asked, and never pretend to be a person.
- If they are busy, ask for a better day to call back and end politely.
- If they are not interested, thank them and end the call. Do not push more than once.
- If they ask not to be called again, confirm they will be removed from the list, apologise \
for the interruption and end the call.
- Confirm their email address if they agree to receive details.
- Never invent prices, dates or facts you were not given. Offer a follow-up instead.
"""

_INBOUND_SUPPORT_PROMPT = """\
You are the AI phone assistant of {business}, answering incoming calls.
The caller may be {{contact.full_name}} from {{company.name}} (this can be empty when \
the number is unknown; then ask for their name).

Goal: understand why they are calling, answer simple questions, and collect what a team \
member needs to follow up (name, email, a short description of the issue).

How to talk:
- Keep replies short and clear; ask one question at a time.
- Say you are an AI assistant if asked. Never pretend to be a person.
- If you cannot help, offer to have someone from {business} call them back, or transfer the \
call when a department is configured.
- Never invent policies, prices or account details.
"""

_FOLLOW_UP_PROMPT = """\
You are a friendly AI assistant calling on behalf of {business} to follow up with \
{{contact.full_name}} at {{company.name}} about the "{{campaign.name}}" campaign.

Goal: check whether they had a chance to look at what {business} sent or discussed earlier, \
answer short questions, and agree on the next step (a call with the team, more information by \
email, or no further contact).

How to talk:
- Keep every reply to one or two short sentences; ask one question at a time.
- Be honest that you are an AI assistant if asked.
- If they are not interested or ask not to be called again, respect it, confirm, and end the \
call politely.
- Never invent facts you were not given.
"""

_CUSTOM_PROMPT = """\
You are a helpful AI phone assistant calling on behalf of {business}.
You are speaking with {{contact.first_name}}.
Keep replies short and conversational, ask one question at a time, say you are an AI assistant \
if asked, and end the call politely when the conversation is done or the person asks you to.
"""

_TEMPLATES: dict[str, dict[str, Any]] = {
    "outbound-setter": {
        "type": "outbound",
        "inbound_enabled": False,
        "outbound_enabled": True,
        "system_prompt": _OUTBOUND_SETTER_PROMPT,
        "first_message": (
            "Hi {{contact.first_name}}, this is an AI assistant calling on behalf of {business}. "
            "Do you have a quick minute?"
        ),
        "temperature": 0.6,
        "voicemail_action": "leave_message",
        "voicemail_message": (
            "Hi {{contact.first_name}}, this is an AI assistant calling on behalf of {business}. "
            "We'd love to set up a short call with you. We'll try you again another time. "
            "Have a great day!"
        ),
        "end_call": {
            "enabled": True,
            "trigger_phrases": _FAREWELLS,
            "closing_phrase": "Thanks for your time, {{contact.first_name}}. Goodbye!",
        },
        "call_transfer": {"enabled": False, "departments": []},
        "info_extraction": {
            "enabled": True,
            "fields": [
                {
                    "key": "interest_level",
                    "type": "select",
                    "description": "How interested the contact is in a follow-up call.",
                    "question": "How interested would you be in a short follow-up call: "
                                "high, medium, low or none?",
                    "options": ["high", "medium", "low", "none"],
                    "target": "custom_fields",
                },
                {
                    "key": "callback_day",
                    "type": "text",
                    "description": "The day (and time, if given) the contact asked to be "
                                   "called back or agreed to meet.",
                    "question": "What day and time would suit you best for a call back?",
                    "options": None,
                    "target": "custom_fields",
                },
                {
                    "key": "email",
                    "type": "email",
                    "description": "The email address the contact gave for more details.",
                    "question": "What's the best email address to send you the details?",
                    "options": None,
                    "target": "email",
                },
            ],
        },
        "success_criteria": (
            "The contact agreed to a follow-up call on a specific day, or clearly said how "
            "interested they are."
        ),
    },
    "inbound-support": {
        "type": "inbound",
        "inbound_enabled": True,
        "outbound_enabled": False,
        "system_prompt": _INBOUND_SUPPORT_PROMPT,
        "first_message": (
            "Thanks for calling {business}. You're speaking with an AI assistant. "
            "How can I help you today?"
        ),
        "temperature": 0.4,
        "voicemail_detection_enabled": False,
        "voicemail_action": "hangup",
        "voicemail_message": None,
        "end_call": {
            "enabled": True,
            "trigger_phrases": _FAREWELLS,
            "closing_phrase": "Thanks for calling {business}. Goodbye!",
        },
        "call_transfer": {"enabled": False, "departments": []},
        "info_extraction": {
            "enabled": True,
            "fields": [
                {
                    "key": "call_reason",
                    "type": "text",
                    "description": "Why the caller called, in one sentence.",
                    "question": "What can I help you with today?",
                    "options": None,
                    "target": "custom_fields",
                },
                {
                    "key": "email",
                    "type": "email",
                    "description": "The caller's email address, if given.",
                    "question": "Could I have your email address, so the team can follow up?",
                    "options": None,
                    "target": "email",
                },
            ],
        },
        "success_criteria": (
            "The caller's question was answered, or their request was captured for a team "
            "member to follow up."
        ),
    },
    "follow-up": {
        "type": "outbound",
        "inbound_enabled": False,
        "outbound_enabled": True,
        "system_prompt": _FOLLOW_UP_PROMPT,
        "first_message": (
            "Hi {{contact.first_name}}, this is an AI assistant calling on behalf of {business} "
            "to follow up on our earlier conversation. Is now a good time?"
        ),
        "temperature": 0.6,
        "voicemail_action": "leave_message",
        "voicemail_message": (
            "Hi {{contact.first_name}}, this is an AI assistant calling on behalf of {business} "
            "to follow up. We'll try you again soon. Have a great day!"
        ),
        "end_call": {
            "enabled": True,
            "trigger_phrases": _FAREWELLS,
            "closing_phrase": "Thanks, {{contact.first_name}}. Have a great day. Goodbye!",
        },
        "call_transfer": {"enabled": False, "departments": []},
        "info_extraction": {
            "enabled": True,
            "fields": [
                {
                    "key": "next_step",
                    "type": "select",
                    "description": "The next step the contact agreed to.",
                    "question": "What would be the best next step for you: a meeting, some "
                                "information to read, a call later, or nothing for now?",
                    "options": ["meeting", "send_info", "call_later", "not_interested"],
                    "target": "custom_fields",
                },
                {
                    "key": "callback_day",
                    "type": "text",
                    "description": "The day the contact asked to be called back, if any.",
                    "question": "If we should call you back, which day works for you?",
                    "options": None,
                    "target": "custom_fields",
                },
            ],
        },
        "success_criteria": "The contact agreed to a concrete next step.",
    },
    "custom": {
        "type": "outbound",
        "system_prompt": _CUSTOM_PROMPT,
        "first_message": (
            "Hi {{contact.first_name}}, this is an AI assistant calling on behalf of {business}."
        ),
        "voicemail_action": "hangup",
        "voicemail_message": None,
        "end_call": {
            "enabled": True,
            "trigger_phrases": ["goodbye"],
            "closing_phrase": "Thanks for your time. Goodbye!",
        },
        "call_transfer": {"enabled": False, "departments": []},
        "info_extraction": {"enabled": False, "fields": []},
        "success_criteria": None,
    },
}


def _fill(value: Any, business: str) -> Any:
    if isinstance(value, str):
        return value.replace("{business}", business)
    if isinstance(value, list):
        return [_fill(v, business) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, business) for k, v in value.items()}
    return value


def template_defaults(template_id: str, business: str) -> dict[str, Any]:
    """The template's assistant fields (snake_case column names), with the calling business's
    name filled in. Raises ``KeyError`` for an unknown template id."""
    raw = _TEMPLATES[template_id]
    # Braces would turn a team name into a prompt variable; they never belong in a name.
    name = business.replace("{", "").replace("}", "").strip() or "our team"
    return _fill(copy.deepcopy(raw), name)  # type: ignore[no-any-return]
