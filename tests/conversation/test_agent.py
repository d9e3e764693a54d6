"""The LLM turn loop against scripted callees: tools, trigger phrases, opt-out, failures."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx

from callfleet.conversation.agent import Conversation
from callfleet.conversation.lines import lines_for
from callfleet.conversation.llm import LlmClient, LlmConfig
from callfleet.conversation.personas import Callee
from callfleet.secrets import secret_box
from tests.conversation.fake_llm import FakeLLM


def assistant(**kw: Any) -> Any:
    base: dict[str, Any] = {
        "end_call": {"enabled": True, "trigger_phrases": ["talk to you soon"],
                     "closing_phrase": "Thanks, bye!"},
        "call_transfer": {"enabled": True, "departments": [
            {"name": "Sales", "mode": "warm", "phone_number": "+12125550100",
             "intro_message": "A hot lead for you."},
            {"name": "Support", "mode": "cold", "phone_number": "+12125550101"}]},
        "tools": [], "info_extraction": {},
    }
    return SimpleNamespace(**{**base, **kw})


async def converse(fake: FakeLLM, persona: str = "interested", *, a: Any = None,
                   max_turns: int = 6, retries: int = 0) -> Any:
    async def no_sleep(_: float) -> None:
        return None

    cfg = LlmConfig(fake.url, "k", "fake", "env", timeout_seconds=5, max_retries=retries)
    a = a or assistant()
    a_ = {k: v for k, v in vars(a).items() if k != "first_message"}
    async with httpx.AsyncClient() as http:
        conv = Conversation(
            client=LlmClient(cfg, sleep=no_sleep), assistant=a,
            system_prompt="You are Ava.",
            lines=lines_for(SimpleNamespace(first_message="Hi Sam, this is Ava.", **a_), {}),
            callee=Callee.for_call(persona, {"first_name": "Sam"}, "+12125550123"),
            call_info={"id": "call_x"}, http=http, max_turns=max_turns, tool_timeout=0.5)
        return await conv.run()


def texts(result: Any, role: str) -> list[str]:
    return [m["text"] for m in result.messages if m["role"] == role]


async def test_model_ends_the_call_with_its_tool(fake_llm: FakeLLM) -> None:
    fake_llm.push({"text": "What's the best email for you?"},
                  {"tool": "end_call", "args": {"reason": "done"}})
    r = await converse(fake_llm, "gives_email")
    assert (r.outcome, r.ended_reason) == ("answered", "assistant_ended_call")
    assert texts(r, "user")[1] == "Sure, my email is sam.0123@example.com."
    assert texts(r, "assistant")[-1] == "Thanks, bye!"
    assert r.tool_calls[0]["name"] == "end_call"
    # The model saw the whole conversation: its system prompt, then the turns in order.
    last = fake_llm.requests[-1]["messages"]
    assert last[0] == {"role": "system", "content": "You are Ava."}
    assert last[1]["role"] == "assistant" and last[-1]["role"] == "user"
    assert r.duration_seconds > 0 and [m["time"] for m in r.messages] == sorted(
        m["time"] for m in r.messages)


async def test_trigger_phrase_said_by_the_assistant_ends_the_call(fake_llm: FakeLLM) -> None:
    fake_llm.push({"text": "Great, talk to you soon."})
    r = await converse(fake_llm)
    assert r.ended_reason == "assistant_ended_call"
    assert texts(r, "assistant")[-2:] == ["Great, talk to you soon.", "Thanks, bye!"]
    assert len(fake_llm.requests) == 1


async def test_trigger_phrase_said_by_the_callee_ends_the_call(fake_llm: FakeLLM) -> None:
    a = assistant(end_call={"enabled": True, "trigger_phrases": ["tell me more"],
                            "closing_phrase": "Bye now."})
    fake_llm.push({"text": "We help teams call faster."})
    r = await converse(fake_llm, a=a)  # "That sounds interesting, tell me more."
    assert r.ended_reason == "assistant_ended_call"
    assert texts(r, "assistant")[-1] == "Bye now." and len(fake_llm.requests) == 1


async def test_opt_out_ends_the_call_as_opted_out(fake_llm: FakeLLM) -> None:
    fake_llm.push({"text": "I'm calling about our offer."})
    r = await converse(fake_llm, "opt_out")
    assert (r.outcome, r.ended_reason) == ("opted_out", "customer_opted_out")
    assert "removed you" in texts(r, "assistant")[-1]


async def test_warm_transfer_is_recorded(fake_llm: FakeLLM) -> None:
    fake_llm.push({"tool": "transfer_call", "args": {"department": "sales",
                                                     "reason": "wants a demo"}})
    r = await converse(fake_llm)
    assert (r.outcome, r.ended_reason) == ("answered", "assistant_forwarded_call")
    assert r.transfer["department"] == "Sales" and r.transfer["mode"] == "warm"
    assert r.transfer["result"] == "completed" and r.transfer["brief"] == "A hot lead for you."
    tools = fake_llm.requests[0]["tools"]
    names = [t["function"]["name"] for t in tools]
    assert names == ["end_call", "transfer_call"]
    assert tools[1]["function"]["parameters"]["properties"]["department"]["enum"] == [
        "Sales", "Support"]


async def test_unknown_department_is_told_to_the_model(fake_llm: FakeLLM) -> None:
    fake_llm.push({"tool": "transfer_call", "args": {"department": "Legal"}},
                  {"tool": "transfer_call", "args": {"department": "Support"}})
    r = await converse(fake_llm)
    assert r.transfer["department"] == "Support" and r.transfer["mode"] == "cold"
    second = fake_llm.requests[1]["messages"]
    assert any("unknown department" in m["content"] for m in second if m["role"] == "system")


async def test_webhook_tool_result_goes_back_to_the_model(fake_llm: FakeLLM) -> None:
    a = assistant(tools=[{"name": "lookup_order", "description": "Find an order",
                          "url": fake_llm.tool_url("lookup_order"),
                          # stored encrypted, as assistants/service.py writes it
                          "headers": {"X-Api-Key": secret_box().encrypt("hook-secret")},
                          "parameters": {"type": "object", "properties": {
                              "order": {"type": "string"}}}}])
    fake_llm.tool_results["lookup_order"] = {"result": "Order 42 ships Friday"}
    fake_llm.push({"tool": "lookup_order", "args": {"order": "42"}},
                  {"text": "Your order ships Friday. Talk to you soon."})
    r = await converse(fake_llm, a=a)
    assert fake_llm.tool_requests[0]["arguments"] == {"order": "42"}
    assert fake_llm.tool_requests[0]["call"]["id"] == "call_x"
    assert fake_llm.tool_requests[0]["http_headers"]["x-api-key"] == "hook-secret"
    second = fake_llm.requests[1]["messages"]
    assert {"role": "system", "content": "Tool lookup_order returned: Order 42 ships Friday"} \
        in second
    assert r.tool_calls[0]["ok"] is True and r.ended_reason == "assistant_ended_call"


async def test_failing_and_slow_webhook_tools_do_not_crash_the_call(fake_llm: FakeLLM) -> None:
    a = assistant(tools=[
        {"name": "broken", "url": fake_llm.tool_url("broken")},
        {"name": "slow", "url": fake_llm.tool_url("slow"), "timeout_seconds": 0.2}])
    fake_llm.tool_results["broken"] = {"status": 500, "error": "boom"}
    fake_llm.tool_results["slow"] = {"delay": 1.0, "result": "late"}
    fake_llm.push({"tool": "broken"}, {"tool": "slow"},
                  {"text": "Sorry, I can't check that now. Talk to you soon."})
    r = await converse(fake_llm, a=a)
    system = texts(r, "system")
    assert system == ["Tool broken error: the broken tool answered HTTP 500",
                      "Tool slow error: the slow tool did not answer within 0.2 s"]
    assert [t["ok"] for t in r.tool_calls] == [False, False]
    assert r.outcome == "answered"


async def test_model_failure_ends_the_call_as_a_retryable_failure(fake_llm: FakeLLM) -> None:
    fake_llm.push({"status": 500}, {"status": 500})
    r = await converse(fake_llm, retries=1)
    assert (r.outcome, r.ended_reason) == ("failed", "assistant_error")
    assert "technical difficulties" in texts(r, "assistant")[-1] and r.error


async def test_turns_are_bounded(fake_llm: FakeLLM) -> None:
    fake_llm.policy = lambda body: {"text": "Anything else?"}
    r = await converse(fake_llm, "interested", max_turns=3)
    assert r.ended_reason in ("max_turns", "customer_ended_call")
    assert len(texts(r, "user")) <= 3
