"""The LLM client against a local OpenAI-compatible server, through the real ``openai``
client: plain and streamed text, tool calls, structured output, retries and timeouts."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from callfleet.conversation.llm import EnvLlm, LlmClient, LlmConfig, LlmError, resolve_config
from callfleet.secrets import secret_box
from tests.conversation.fake_llm import FakeLLM


def client(fake: FakeLLM, **kw: Any) -> tuple[LlmClient, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    cfg = LlmConfig(base_url=fake.url, api_key="sk-test", model="fake-model", source="env",
                    temperature=0.2, max_tokens=50,
                    **{"timeout_seconds": 5.0, "max_retries": 2, "retry_base_seconds": 0.5,
                       **kw})
    return LlmClient(cfg, sleep=sleep), sleeps


MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


async def test_plain_text_without_stream(fake_llm: FakeLLM) -> None:
    fake_llm.push({"text": "Hello there."})
    c, _ = client(fake_llm)
    result = await c.chat(MSGS, stream=False)
    assert result.text == "Hello there." and result.tool_calls == []
    sent = fake_llm.requests[0]
    assert sent["model"] == "fake-model" and sent["temperature"] == 0.2
    assert sent["max_tokens"] == 50 and not sent.get("stream")


async def test_streamed_text_is_joined(fake_llm: FakeLLM) -> None:
    fake_llm.push({"text": "Hello there, this arrives in pieces."})
    c, _ = client(fake_llm)
    result = await c.chat(MSGS)
    assert result.text == "Hello there, this arrives in pieces."
    assert fake_llm.requests[0]["stream"] is True


async def test_streamed_tool_call_arguments_are_assembled(fake_llm: FakeLLM) -> None:
    fake_llm.push({"tool": "transfer_call", "args": {"department": "Sales", "reason": "demo"},
                   "text": "One moment."})
    c, _ = client(fake_llm)
    tools = [{"type": "function", "function": {"name": "transfer_call", "parameters": {
        "type": "object", "properties": {"department": {"type": "string"}}}}}]
    result = await c.chat(MSGS, tools=tools)
    assert result.text == "One moment."
    assert [(t.name, t.arguments) for t in result.tool_calls] == [
        ("transfer_call", {"department": "Sales", "reason": "demo"})]
    assert fake_llm.requests[0]["tools"][0]["function"]["name"] == "transfer_call"


class Answer(BaseModel):
    city: str
    people: int | None


async def test_structured_output_is_validated(fake_llm: FakeLLM) -> None:
    fake_llm.push({"json": {"city": "Oslo", "people": 3}})
    c, _ = client(fake_llm)
    out = await c.structured(MSGS, "answer", Answer)
    assert out == Answer(city="Oslo", people=3)
    fmt = fake_llm.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "answer"
    assert set(fmt["json_schema"]["schema"]["properties"]) == {"city", "people"}


async def test_structured_output_not_matching_the_schema_fails(fake_llm: FakeLLM) -> None:
    fake_llm.push({"raw": "not json"}, {"json": {"city": 5}})
    c, _ = client(fake_llm)
    with pytest.raises(LlmError, match="schema"):
        await c.structured(MSGS, "answer", Answer)
    assert len(fake_llm.requests) == 2


async def test_structured_output_in_code_fences_is_accepted(fake_llm: FakeLLM) -> None:
    fake_llm.push({"raw": '```json\n{"city": "Rome", "people": null}\n```'})
    c, _ = client(fake_llm)
    assert (await c.structured(MSGS, "answer", Answer)).city == "Rome"


async def test_429_and_500_are_retried_with_backoff(fake_llm: FakeLLM) -> None:
    fake_llm.push({"status": 429, "retry_after": "0"}, {"status": 500}, {"text": "Finally."})
    c, sleeps = client(fake_llm)
    result = await c.chat(MSGS)
    assert result.text == "Finally." and result.attempts == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] < sleeps[1]  # exponential


async def test_retry_after_header_is_honoured(fake_llm: FakeLLM) -> None:
    fake_llm.push({"status": 429, "retry_after": "7"}, {"text": "ok"})
    c, sleeps = client(fake_llm)
    await c.chat(MSGS)
    assert sleeps == [7.0]


async def test_retries_are_bounded(fake_llm: FakeLLM) -> None:
    fake_llm.push(*[{"status": 503}] * 5)
    c, sleeps = client(fake_llm, max_retries=2)
    with pytest.raises(LlmError, match="after 3 attempts"):
        await c.chat(MSGS)
    assert len(fake_llm.requests) == 3 and len(sleeps) == 2


async def test_client_errors_are_not_retried(fake_llm: FakeLLM) -> None:
    fake_llm.push({"status": 400}, {"text": "never"})
    c, sleeps = client(fake_llm)
    with pytest.raises(LlmError, match="HTTP 400"):
        await c.chat(MSGS)
    assert len(fake_llm.requests) == 1 and sleeps == []


async def test_a_slow_answer_times_out_and_is_retried(fake_llm: FakeLLM) -> None:
    fake_llm.push({"delay": 2.0, "text": "too late"}, {"text": "in time"})
    c, sleeps = client(fake_llm, timeout_seconds=0.3)
    result = await c.chat(MSGS)
    assert result.text == "in time" and result.attempts == 2 and len(sleeps) == 1


async def test_a_model_that_stays_slow_fails(fake_llm: FakeLLM) -> None:
    fake_llm.push(*[{"delay": 2.0, "text": "late"}] * 2)
    c, _ = client(fake_llm, timeout_seconds=0.3, max_retries=1)
    with pytest.raises(LlmError):
        await c.chat(MSGS, stream=False)


def _assistant(**kw: Any) -> Any:
    base = {"llm_base_url": None, "llm_api_key": None, "model": "gpt-4o-mini",
            "temperature": 0.5, "max_tokens": 100}
    return SimpleNamespace(**{**base, **kw})


def test_resolution_assistant_over_team_over_env() -> None:
    env = EnvLlm(base_url="http://env/v1", api_key="env-key", model="llama3")
    box = secret_box()  # team and assistant keys are stored encrypted
    team = {"llm_base_url": "http://team/v1", "llm_api_key": box.encrypt("team-key"),
            "llm_model": "t-model"}
    own = _assistant(llm_base_url="http://own/v1", llm_api_key=box.encrypt("own-key"),
                     model="gpt-4o")
    assert "own-key" not in own.llm_api_key
    c = resolve_config(own, team, env)
    assert c and (c.base_url, c.api_key, c.model, c.source) == (
        "http://own/v1", "own-key", "gpt-4o", "assistant")
    c = resolve_config(_assistant(), team, env)
    assert c and (c.base_url, c.api_key, c.model, c.source) == (
        "http://team/v1", "team-key", "t-model", "team")
    c = resolve_config(_assistant(), {}, env)
    assert c and (c.base_url, c.api_key, c.model, c.source) == (
        "http://env/v1", "env-key", "llama3", "env")
    # An endpoint without its own model uses the assistant's.
    c = resolve_config(_assistant(model="m1"), {"llm_base_url": "http://team/v1"}, EnvLlm())
    assert c and c.model == "m1" and c.api_key is None
    assert c.temperature == 0.5 and c.max_tokens == 100


def test_an_operator_key_never_goes_to_a_team_url() -> None:
    env = EnvLlm(base_url="http://env/v1", api_key="operator-secret", model="m")
    c = resolve_config(_assistant(), {"llm_base_url": "http://team/v1"}, env)
    assert c and c.base_url == "http://team/v1" and c.api_key is None
    c = resolve_config(_assistant(llm_base_url="http://own/v1"), {}, env)
    assert c and c.api_key is None
    assert "operator-secret" not in repr(c.describe())


def test_no_llm_anywhere_means_the_deterministic_path() -> None:
    assert resolve_config(_assistant(), {}, EnvLlm()) is None
    assert resolve_config(None, None, EnvLlm()) is None
