"""Every utterance the assistant makes renders the prompt variables (SPEC 3), on every path,
and the deterministic assistant asks natural questions, not field descriptions."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from callfleet.assistants.prompts import variables_for
from callfleet.assistants.questions import default_question, question_for
from callfleet.assistants.templates import TEMPLATE_IDS, template_defaults
from callfleet.conversation.agent import Conversation
from callfleet.conversation.lines import Lines, lines_for
from callfleet.conversation.llm import LlmClient, LlmConfig
from callfleet.conversation.personas import PERSONAS, Callee
from callfleet.conversation.policy import DeterministicPolicy
from callfleet.conversation.script import run_scripted
from tests.conversation.fake_llm import FakeLLM

BRACES = re.compile(r"\{\{|\}\}")
CONTACT = {"id": "cont_1", "first_name": "Jordan", "last_name": "Lee",
           "custom_fields": {"plan": "Gold"}}
COMPANY = {"id": "comp_1", "name": "Northwind", "custom_fields": {}}
CAMPAIGN = {"id": "camp_1", "name": "Spring outreach", "description": None}
VARIABLES = variables_for(CONTACT, COMPANY, CAMPAIGN)


def template_assistant(template_id: str, **extra: Any) -> Any:
    values = template_defaults(template_id, "Acme Solar")
    values.setdefault("voicemail_message", None)
    values.setdefault("tools", [])
    return SimpleNamespace(**{**values, **extra})


def every_line(lines: Lines) -> list[str]:
    return [lines.system_prompt, lines.first_message, lines.closing, lines.voicemail,
            *(q.text for q in lines.questions), *lines.announcements.values(),
            *lines.briefs.values(), *lines.tool_messages.values()]


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
def test_every_template_renders_every_line(template_id: str) -> None:
    lines = lines_for(template_assistant(template_id), VARIABLES)
    assert lines.unknown == []
    for text in every_line(lines):
        assert not BRACES.search(text), text
    raw = template_defaults(template_id, "Acme Solar")
    if "{{contact.first_name}}" in raw["first_message"]:
        assert "Jordan" in lines.first_message
    if "{{contact.first_name}}" in (raw["end_call"] or {}).get("closing_phrase", ""):
        assert "Jordan" in lines.closing
    if "{{contact.first_name}}" in (raw.get("voicemail_message") or raw["first_message"]):
        assert "Jordan" in lines.voicemail
    # The questions are questions, never the field's description read aloud.
    for field, question in zip(raw["info_extraction"]["fields"], lines.questions, strict=True):
        assert question.text.endswith("?") and question.text != field["description"]


@pytest.mark.parametrize("template_id", TEMPLATE_IDS)
@pytest.mark.parametrize("persona", PERSONAS)
def test_the_deterministic_assistant_speaks_no_variable(template_id: str, persona: str) -> None:
    lines = lines_for(template_assistant(template_id), VARIABLES)
    result = run_scripted(lines=lines, persona=persona, contact=CONTACT, number="+12125550123")
    said = [m["text"] for m in result.messages if m["role"] == "assistant"]
    assert said and not any(BRACES.search(t) for t in said), said
    if result.outcome == "answered":
        assert said[-1] == lines.closing
    if template_id == "outbound-setter" and result.outcome == "answered":
        assert said[-1] == "Thanks for your time, Jordan. Goodbye!"


def test_configured_lines_render_too() -> None:
    a = template_assistant(
        "custom", first_message="Hi {{ contact.first_name }} from {{company.name}}",
        voicemail_message="Jordan? It's {{company.name}} about {{campaign.name}}.",
        end_call={"enabled": True, "trigger_phrases": ["bye"],
                  "closing_phrase": "Bye {{contact.first_name}}, {{contact.custom.plan}} member"},
        call_transfer={"enabled": True, "departments": [{
            "name": "Sales", "mode": "warm", "phone_number": "+12125550100",
            "announcement": "Putting you through to {{company.name}} sales, "
                            "{{contact.first_name}}.",
            "intro_message": "{{contact.full_name}} from {{company.name}} wants a demo."}]},
        tools=[{"name": "lookup", "url": "https://tools.example.com/x",
                "message": "One moment {{contact.first_name}}, {{nope}} checking."}],
        info_extraction={"enabled": True, "fields": [
            {"key": "budget", "type": "number", "description": "The monthly budget",
             "question": "What budget does {{company.name}} have in mind?"}]})
    lines = lines_for(a, VARIABLES)
    assert lines.first_message == "Hi Jordan from Northwind"
    assert lines.voicemail == "Jordan? It's Northwind about Spring outreach."
    assert lines.closing == "Bye Jordan, Gold member"
    assert lines.announcement("Sales") == "Putting you through to Northwind sales, Jordan."
    assert lines.brief("sales") == "Jordan Lee from Northwind wants a demo."
    assert lines.tool_message("lookup") == "One moment Jordan, checking."  # unknown -> empty
    assert lines.unknown == ["nope"]
    assert [q.text for q in lines.questions] == ["What budget does Northwind have in mind?"]
    assert lines.announcement("Support") == "Let me transfer you to Support now."


async def test_llm_path_speaks_rendered_closing_announcement_and_tool_message(
        fake_llm: FakeLLM) -> None:
    a = template_assistant(
        "outbound-setter",
        call_transfer={"enabled": True, "departments": [{
            "name": "Sales", "mode": "warm", "phone_number": "+12125550100",
            "announcement": "Connecting you with {{company.name}} sales now, "
                            "{{contact.first_name}}.",
            "intro_message": "{{contact.full_name}} wants a demo."}]},
        tools=[{"name": "lookup", "url": fake_llm.tool_url("lookup"),
                "message": "Let me check that for you, {{contact.first_name}}."}])
    fake_llm.tool_results["lookup"] = {"result": "ok"}
    fake_llm.push({"tool": "lookup", "args": {}},
                  {"tool": "transfer_call", "args": {"department": "Sales"}})

    async def no_sleep(_: float) -> None:
        return None

    lines = lines_for(a, VARIABLES)
    async with httpx.AsyncClient() as http:
        result = await Conversation(
            client=LlmClient(LlmConfig(fake_llm.url, "k", "fake", "env", timeout_seconds=5),
                             sleep=no_sleep),
            assistant=a, system_prompt=lines.system_prompt, lines=lines,
            callee=Callee.for_call("interested", CONTACT, "+12125550123"),
            call_info={"id": "call_x"}, http=http, tool_timeout=0.5).run()
    said = [m["text"] for m in result.messages if m["role"] == "assistant"]
    assert said[0] == "Hi Jordan, this is an AI assistant calling on behalf of Acme Solar. " \
                      "Do you have a quick minute?"
    assert "Let me check that for you, Jordan." in said
    assert said[-1] == "Connecting you with Northwind sales now, Jordan."
    assert result.transfer is not None and result.transfer["brief"] == "Jordan Lee wants a demo."
    assert not any(BRACES.search(t) for t in said)


def test_default_questions_are_natural() -> None:
    assert default_question("email", "email", None) == "Could you tell me your email address?"
    assert default_question("work_email", "text", None) == \
        "Could you tell me your email address?"
    assert default_question("interest_level", "select", ["high", "medium", "low", "none"]) == \
        "How would you describe your interest level: high, medium, low or none?"
    assert default_question("next_step", "select", ["send_info", "call_later"]) == \
        "How would you describe your next step: send info or call later?"
    assert default_question("team_size", "number", None) == "Roughly what is your team size?"
    assert default_question("callback_day", "text", None) == \
        "When would be a good time to call you back?"
    assert default_question("alt_phone", "phone", None) == \
        "What is the best phone number to reach you on?"
    assert default_question("renewal_date", "date", None) == \
        "What date should I note for your renewal date?"
    assert default_question("decision_maker", "boolean", None) == \
        "Could you tell me, yes or no: decision maker?"
    assert question_for({"key": "x", "question": "  Which plan?  "}) == "Which plan?"
    assert question_for({"key": "job_title", "type": "text",
                         "description": "The person's job title"}) == \
        "Could you tell me your job title?"


def test_policy_turns() -> None:
    lines = lines_for(template_assistant("outbound-setter"), VARIABLES)
    policy = DeterministicPolicy(lines)
    assert policy.opening().text.startswith("Hi Jordan,")
    first = policy.reply("Sure, I have a minute.")
    assert first.text == lines.questions[0].text and not first.end_call
    assert policy.reply("Medium.").text == lines.questions[1].text
    assert policy.reply("Thursday.").text == lines.questions[2].text
    last = policy.reply("jordan@example.com")
    assert last.end_call and last.text == "Thanks for your time, Jordan. Goodbye!"
    assert (last.outcome, last.ended_reason) == ("answered", "assistant_ended_call")
    out = DeterministicPolicy(lines).reply("Please take me off your list.")
    assert out.end_call and out.outcome == "opted_out"
    bye = DeterministicPolicy(lines).reply("Not now, goodbye.")
    assert bye.end_call and bye.outcome == "answered"
