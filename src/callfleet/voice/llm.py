"""The LLM brain of a voice call: pipecat's ``OpenAILLMService`` against the assistant's (or
team's, or operator's) OpenAI-compatible endpoint (``conversation.llm.resolve_config``),
streamed into speech sentence by sentence, with the assistant's tools: ``end_call`` (the
closing phrase is said, then the call ends after it has played), ``transfer_call`` and the
custom webhook tools (``conversation.tools.run_webhook``). An opt-out phrase from the callee
is answered by ``OptOutGuard`` without the model, as in the text conversation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.frames.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSSpeakFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams, FunctionCallResultProperties
from pipecat.services.openai.llm import OpenAILLMService

from callfleet.conversation import tools as T
from callfleet.conversation.lines import OPT_OUT_REPLY, Lines
from callfleet.conversation.llm import LlmConfig
from callfleet.conversation.policy import detects_opt_out
from callfleet.voice.control import CallControl
from callfleet.voice.pipeline import last_user_text, seconds_to_say


def _now() -> float:
    return asyncio.get_running_loop().time()


class OptOutGuard(FrameProcessor):
    """Before the model: "remove me from your list" ends the call as ``opted_out``."""

    def __init__(self, control: CallControl) -> None:
        super().__init__(name="OptOutGuard")
        self.control = control

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame) and detects_opt_out(last_user_text(frame.context)):
            await self.push_frame(LLMFullResponseStartFrame())
            await self.push_frame(LLMTextFrame(OPT_OUT_REPLY))
            await self.push_frame(LLMFullResponseEndFrame())
            self.control.request_hangup("customer_opted_out", "opted_out", _now(),
                                        seconds_to_say(OPT_OUT_REPLY))
            return
        await self.push_frame(frame, direction)


def tool_schemas(assistant: Any) -> list[FunctionSchema]:
    out: list[FunctionSchema] = []
    for spec in T.specs(assistant):
        fn = spec["function"]
        params = fn.get("parameters") or {}
        out.append(FunctionSchema(name=fn["name"], description=fn.get("description") or "",
                                  properties=params.get("properties") or {},
                                  required=params.get("required") or []))
    return out


def llm_service(config: LlmConfig) -> OpenAILLMService:
    settings: dict[str, Any] = {"model": config.model}
    if config.temperature is not None:
        settings["temperature"] = config.temperature
    if config.max_tokens is not None:
        settings["max_tokens"] = config.max_tokens
    return OpenAILLMService(api_key=config.api_key or "not-needed", base_url=config.base_url,
                            settings=OpenAILLMService.Settings(**settings))


def llm_context(system_prompt: str, first_message: str, assistant: Any) -> LLMContext:
    messages: list[Any] = [{"role": "system", "content": system_prompt}]
    if first_message:
        messages.append({"role": "assistant", "content": first_message})
    schemas = tool_schemas(assistant)
    return LLMContext(messages, tools=ToolsSchema(standard_tools=schemas) if schemas else None)


def register_tools(llm: OpenAILLMService, assistant: Any, lines: Lines, control: CallControl,
                   call_info: dict[str, Any], http: httpx.AsyncClient,
                   tool_timeout: float) -> None:
    closing = lines.closing
    tool_log = control.tool_calls

    async def end_call(params: FunctionCallParams) -> None:
        tool_log.append({"name": T.END_CALL, "arguments": params.arguments,
                         "time": control.rel(_now()), "result": "ended"})
        await params.result_callback({"ended": True},
                                     properties=FunctionCallResultProperties(run_llm=False))
        said = last_assistant_text(params.context)
        speak = closing.lower() not in said.lower()
        if speak:
            await params.llm.push_frame(TTSSpeakFrame(closing))
        control.request_hangup("assistant_ended_call", "answered", _now(),
                               seconds_to_say(closing), speech=speak)

    async def transfer_call(params: FunctionCallParams) -> None:
        dept = T.find_department(assistant, params.arguments.get("department"))
        record: dict[str, Any] = {"name": T.TRANSFER_CALL, "arguments": params.arguments,
                                  "time": control.rel(_now())}
        tool_log.append(record)
        if dept is None:
            record["result"] = "error: unknown department"
            await params.result_callback("error: unknown department")
            return
        line = lines.announcement(dept["name"])
        record["result"] = "completed"
        control.transfer = {"department": dept["name"],
                            "mode": dept.get("mode") or "cold",
                            "phone_number": dept.get("phone_number"),
                            "brief": lines.brief(dept["name"]) or None}
        await params.result_callback({"transferred": dept["name"]},
                                     properties=FunctionCallResultProperties(run_llm=False))
        await params.llm.push_frame(TTSSpeakFrame(line))
        control.request_hangup("assistant_forwarded_call", "answered", _now(),
                               seconds_to_say(line))

    def webhook(tool: dict[str, Any]) -> Any:
        async def run(params: FunctionCallParams) -> None:
            ok, text = await T.run_webhook(tool, dict(params.arguments), call_info, http,
                                           tool_timeout)
            tool_log.append({"name": tool["name"], "arguments": params.arguments, "ok": ok,
                             "result": text, "time": control.rel(_now())})
            await params.result_callback(text)
        return run

    if T.end_call_enabled(assistant):
        llm.register_function(T.END_CALL, end_call)
    if T.departments(assistant):
        llm.register_function(T.TRANSFER_CALL, transfer_call)
    for tool in T.custom_tools(assistant):
        llm.register_function(tool["name"], webhook(tool))


def last_assistant_text(context: LLMContext) -> str:
    for m in reversed(context.get_messages()):
        if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(
                m.get("content"), str):
            return str(m["content"])
    return ""
