"""LLM endpoints a team or an assistant chose go through the outbound policy at connect
time: a name that resolves to loopback is refused at once (no retries) and the conversation
ends on its usual error path; an allowed network, and the operator's own endpoint, are
reached."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from callfleet.conversation.agent import ERROR_REPLY, Conversation
from callfleet.conversation.lines import Lines
from callfleet.conversation.llm import LlmClient, LlmConfig, LlmError
from callfleet.conversation.personas import Callee
from callfleet.outbound import OutboundPolicy, parse_networks
from tests.conftest import REBIND
from tests.conversation.fake_llm import FakeLLM

pytestmark = pytest.mark.usefixtures("rebinding_dns")


def _assistant() -> Any:
    return SimpleNamespace(end_call={}, call_transfer={}, tools=[], info_extraction={})


def _llm(fake: FakeLLM, source: str) -> LlmConfig:
    return LlmConfig(f"http://{REBIND}:{fake.port}/v1", "k", "fake", source,
                     timeout_seconds=5, max_retries=3, retry_base_seconds=0)


async def test_llm_endpoint_that_rebinds_to_loopback_ends_the_conversation(
        fake_llm: FakeLLM) -> None:
    fake_llm.push({"text": "never asked"})
    with pytest.raises(LlmError, match="refused.*127.0.0.1, a loopback address"):
        await LlmClient(_llm(fake_llm, "team")).chat([{"role": "user", "content": "hi"}])
    assert fake_llm.requests == []  # refused at once, no retries
    # In a call: the usual error path (the apology, ended as an assistant error).
    async with OutboundPolicy().client() as http:
        result = await Conversation(
            client=LlmClient(_llm(fake_llm, "assistant")), assistant=_assistant(),
            system_prompt="", lines=Lines(), callee=Callee.for_call(
                "interested", {"first_name": "Sam"}, "+12125550123"),
            call_info={"id": "call_x"}, http=http, max_turns=2, tool_timeout=1).run()
    assert (result.outcome, result.ended_reason) == ("failed", "assistant_error")
    assert result.messages[-1]["text"] == ERROR_REPLY and "refused" in (result.error or "")
    assert fake_llm.requests == []


async def test_llm_endpoint_in_an_allowed_network_and_the_operators_own_are_reached(
        fake_llm: FakeLLM) -> None:
    fake_llm.push({"text": "Hello."}, {"text": "Hi again."})
    allowed = parse_networks("127.0.0.1/32")
    out = await LlmClient(_llm(fake_llm, "team"), allowed_networks=allowed).chat(
        [{"role": "user", "content": "hi"}], stream=False)
    assert out.text == "Hello."
    env = LlmConfig(fake_llm.url, "k", "fake", "env", timeout_seconds=5)  # trusted
    assert (await LlmClient(env).chat([{"role": "user", "content": "hi"}],
                                      stream=False)).text == "Hi again."

